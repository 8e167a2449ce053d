"""The packaging files as the packaging tests read them: metadata.yaml, the Dockerfile, setup.py,
the locks and the Makefile's variables.

Each is read the way its consumer reads it (YAML, Docker's instruction syntax, Python's syntax
tree), never by running it, so a test sees what Airbyte or Docker would see.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
METADATA = REPO / "metadata.yaml"
SETUP_PY = REPO / "setup.py"
MAKEFILE = REPO / "Makefile"
# What `make lock` writes: the install (the image's), the install with the tests extra (.venv's),
# and PyAirbyte's own venv (.venv-pyairbyte).
LOCK = REPO / "requirements.lock"
TESTS_LOCK = REPO / "requirements-tests.lock"
PYAIRBYTE_LOCK = REPO / "requirements-pyairbyte.lock"
# The annotation uv gives a package that setup.py asks for itself.
FROM_SETUP_PY = "source-sp-invoices (setup.py)"


def load_metadata() -> dict[str, Any]:
    """metadata.yaml as Airbyte's tooling loads it."""
    return yaml.safe_load(METADATA.read_text())


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword, its arguments as written, and its line."""

    keyword: str
    value: str
    line: int

    def words(self) -> list[str]:
        """The arguments split as the shell would split them (quotes removed)."""
        return shlex.split(self.value)


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    """The Dockerfile's instructions in order, comments left out, as dockerfile-parse reads them."""
    parser = DockerfileParser(path=str(path))
    return [
        Instruction(item["instruction"], item["value"], item["startline"] + 1)
        for item in parser.structure
        if item["instruction"] != "COMMENT"
    ]


def dockerfile(path: Path = DOCKERFILE) -> DockerfileParser:
    """The parser over the Dockerfile, for its derived facts (base image, labels, final ENV)."""
    return DockerfileParser(path=str(path))


def last(instructions: list[Instruction], keyword: str) -> Instruction:
    """The last instruction of a kind: the one that is in force in the finished image."""
    matching = [i for i in instructions if i.keyword == keyword]
    assert matching, f"the Dockerfile has no {keyword} instruction"
    return matching[-1]


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON (exec) form of ENTRYPOINT/CMD; the shell form would hide signals from Python."""
    try:
        argv = json.loads(instruction.value)
    except json.JSONDecodeError:
        argv = None
    assert isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv), (
        f"line {instruction.line}: {instruction.keyword} must be a JSON list of strings, "
        f"got {instruction.value!r}"
    )
    return argv


@cache
def _setup_call() -> dict[str, ast.expr]:
    """The keyword arguments of setup(...) in setup.py, as syntax (setup.py is not run)."""
    tree = ast.parse(SETUP_PY.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup":
            return {kw.arg: kw.value for kw in node.keywords if kw.arg}
    raise AssertionError("setup.py calls no setup(...)")


def _setup_constant(name: str) -> str:
    """A module-level string constant of setup.py."""
    for node in ast.parse(SETUP_PY.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"setup.py assigns no {name}")


def setup_version() -> str:
    """VERSION in setup.py, the one place the package version is written."""
    return _setup_constant("VERSION")


def setup_name() -> str:
    """The distribution name given to setup(name=...)."""
    return ast.literal_eval(_setup_call()["name"])


def console_scripts() -> dict[str, str]:
    """setup.py's console scripts: command name -> "module:function"."""
    entry_points = ast.literal_eval(_setup_call()["entry_points"])
    pairs = (line.split("=", 1) for line in entry_points.get("console_scripts", []))
    return {name.strip(): target.strip() for name, target in pairs}


def setup_requirements(extra: str | None = None) -> list[Requirement]:
    """setup.py's install_requires, and those of one of its extras_require when named."""
    call = _setup_call()
    lines = list(ast.literal_eval(call["install_requires"]))
    if extra is not None:
        lines += ast.literal_eval(call["extras_require"])[extra]
    return [Requirement(line) for line in lines]


def makefile_variable(name: str) -> str:
    """A simple `NAME := value` of the Makefile."""
    found = re.search(rf"^{re.escape(name)}\s*:=\s*(.*?)\s*$", MAKEFILE.read_text(), re.MULTILINE)
    assert found, f"the Makefile sets no {name}"
    return found.group(1)


@dataclass(frozen=True)
class LockedPackage:
    """One package of a lock: its pin, the hashes of its release's files, and who asked for it."""

    requirement: Requirement
    hashes: frozenset[str]
    via: frozenset[str]  # the lock's annotations: the packages or files that require it

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        """The version of its `==` pin (an entry of another form is no pin: an error)."""
        (specifier,) = self.requirement.specifier
        assert specifier.operator == "==", f"{self.requirement} is not pinned with =="
        return Version(specifier.version)


def read_lock(path: Path) -> dict[NormalizedName, LockedPackage]:
    """A hash-pinned requirements file as uv writes it, by package name.

    An entry is a requirement line and its `--hash` continuations; the comment lines indented
    under it are its annotations (`# via NAME`, or `# via` and one `#   NAME` a line).
    """
    entries: list[tuple[str, list[str]]] = []
    continued = False
    for line in path.read_text().splitlines():
        text = line.strip()
        if continued:
            entries[-1] = (entries[-1][0] + " " + text.removesuffix("\\"), entries[-1][1])
        elif text.startswith("#"):
            annotation = text.lstrip("#").strip().removeprefix("via").strip()
            if line[0].isspace() and entries and annotation:
                entries[-1][1].append(annotation)
        elif text:
            assert not text.startswith("-"), f"{path.name}: an option line, not expected: {text}"
            entries.append((text.removesuffix("\\"), []))
        continued = text.endswith("\\")
    packages: dict[NormalizedName, LockedPackage] = {}
    for entry, via in entries:
        requirement, *hashes = re.split(r"\s+--hash=", entry.strip())
        package = LockedPackage(Requirement(requirement), frozenset(hashes), frozenset(via))
        assert package.name not in packages, f"{path.name} locks {package.name} twice"
        packages[package.name] = package
    return packages
