"""The packaging files as the packaging tests read them: metadata.yaml, the Dockerfile, setup.py.

Each is read the way its consumer reads it (YAML, Docker's instruction syntax, Python's syntax
tree), never by running it, so a test sees what Airbyte or Docker would see.
"""

from __future__ import annotations

import ast
import json
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
METADATA = REPO / "metadata.yaml"
SETUP_PY = REPO / "setup.py"


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
