"""The connector image, proven without a Docker engine (none runs here or in CI).

Three ways: hadolint lints the Dockerfile; its instructions, read with dockerfile-parse, are
checked against metadata.yaml, setup.py and the lock; and its build is replayed. The replay stands
a fresh virtual environment in for the base image's Python and a temporary directory in for the
image's file system, copies what each COPY names from the build context that .dockerignore leaves
(as Docker's own matcher computes it), runs each RUN line as written with that environment's
tools, compares what the environment then holds with the lock, and runs the ENTRYPOINT command
with `spec` and with `check` against the bundled emulator.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from docker.utils.build import PatternMatcher
from packaging.utils import canonicalize_name

from integration_tests.conftest import parse_messages
from integration_tests.packaging import (
    DOCKERFILE,
    DOCKERIGNORE,
    LOCK,
    PYAIRBYTE_LOCK,
    REPO,
    TESTS_LOCK,
    Instruction,
    console_scripts,
    dockerfile,
    dockerfile_instructions,
    exec_form,
    last,
    load_metadata,
    read_lock,
    setup_name,
    setup_version,
)

HADOLINT = Path(sys.executable).parent / "hadolint"
HADOLINT_CONFIG = REPO / ".hadolint.yaml"
WORKDIR = "/airbyte/integration_code"
# The base image's non-root user: `airbyte`, uid 1000, created without a home directory.
BASE_IMAGE_USER = {"airbyte", "1000"}
# What the image may hold of the repository: the files its install needs, nothing else.
IMAGE_FILES = {LOCK.name, "setup.py", "main.py"}
IMAGE_PACKAGE = "source_sp_invoices"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    """hadolint over a Dockerfile with the repository's settings."""
    assert HADOLINT.exists(), f"{HADOLINT} is missing: install the tests extra (make test does)"
    return subprocess.run(
        [str(HADOLINT), "--config", str(HADOLINT_CONFIG), "--no-color", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def dockerignore_patterns(path: Path = DOCKERIGNORE) -> list[str]:
    """The patterns of a .dockerignore, read as Docker reads them (blank lines, comments out)."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def build_context(directory: Path) -> set[str]:
    """The files of a directory that COPY can take, by Docker's .dockerignore matcher.

    (Docker also sends an excluded Dockerfile and .dockerignore, but COPY does not take them.)
    """
    matcher = PatternMatcher(dockerignore_patterns())
    return {path for path in matcher.walk(str(directory)) if (directory / path).is_file()}


# ---- static checks ----------------------------------------------------------------------------


def test_hadolint_finds_nothing() -> None:
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_enforces_the_repository_settings(tmp_path: Path) -> None:
    """The settings are in force: labels of the wrong form and a named user are findings."""
    text = DOCKERFILE.read_text()
    version = dockerfile().labels["io.airbyte.version"]
    broken = (
        text.replace(f'io.airbyte.version="{version}"', 'io.airbyte.version="latest"')
        .replace("LABEL io.airbyte.name=", "LABEL io.airbyte.title=")
        .replace("\nUSER 1000\n", "\nUSER airbyte\n")
    )
    assert broken != text
    (tmp_path / "Dockerfile").write_text(broken)
    done = hadolint(tmp_path / "Dockerfile")
    assert done.returncode != 0
    for rule in ("DL3056", "DL3049", "DL3050", "DL3066"):
        assert rule in done.stdout, f"hadolint did not report {rule}:\n{done.stdout}"


def test_base_image_is_the_one_metadata_pins() -> None:
    froms = [i for i in dockerfile_instructions() if i.keyword == "FROM"]
    assert len(froms) == 1, "one build stage: the replay below stands for exactly one"
    base_image = load_metadata()["data"]["connectorBuildOptions"]["baseImage"]
    assert dockerfile().baseimage == base_image
    assert "@sha256:" in base_image


def test_labels_name_the_image_of_metadata() -> None:
    data = load_metadata()["data"]
    labels = dockerfile().labels
    assert labels.get("io.airbyte.name") == data["dockerRepository"]
    assert labels.get("io.airbyte.version") == data["dockerImageTag"]


def test_workdir_is_airbytes_integration_code() -> None:
    assert last(dockerfile_instructions(), "WORKDIR").value == WORKDIR


def test_runs_as_the_base_images_non_root_user_after_installing_as_root() -> None:
    instructions = dockerfile_instructions()
    user = last(instructions, "USER")
    name, _, group = user.value.partition(":")
    assert name in BASE_IMAGE_USER and group not in {"root", "0"}, user
    build_steps = [i for i in instructions if i.keyword in {"RUN", "COPY"}]
    assert all(step.line < user.line for step in build_steps), (
        "every COPY and RUN comes before USER: the installed code stays root's, read-only to the "
        "user that runs it"
    )


def test_entrypoint_is_the_console_script_and_airbyte_entrypoint_agrees() -> None:
    entrypoint = exec_form(last(dockerfile_instructions(), "ENTRYPOINT"))
    assert entrypoint[0] in console_scripts(), f"{entrypoint[0]} is no console script of setup.py"
    airbyte_entrypoint = dockerfile().envs.get("AIRBYTE_ENTRYPOINT")
    assert airbyte_entrypoint is not None, "ENV AIRBYTE_ENTRYPOINT is missing"
    assert shlex.split(airbyte_entrypoint) == entrypoint


def pip_installs() -> list[list[str]]:
    """The arguments of each `pip install` of the RUN steps, in order (shell lists split at &&)."""
    installs = []
    for step in (i for i in dockerfile_instructions() if i.keyword == "RUN"):
        command: list[str] = []
        for word in [*step.words(), "&&"]:
            if word not in {"&&", "||", ";"}:
                command.append(word)
                continue
            pip = command[2:] if command[:2] in (["python", "-m"], ["python3", "-m"]) else command
            if pip[:2] == ["pip", "install"]:
                installs.append(pip[2:])
            command = []
    return installs


def test_installs_the_lock_with_hashes_then_the_package_alone() -> None:
    """Nothing is resolved at build time: the image gets the lock's versions, as make test does."""
    installs = pip_installs()
    assert len(installs) == 2, f"two installs, the lock then the package: {installs}"
    lock, package = installs
    assert "--require-hashes" in lock, lock
    assert [w for w in lock if not w.startswith("--")] == ["-r", LOCK.name], lock
    assert {"--no-deps", "--no-build-isolation"} <= set(package), package
    assert [w for w in package if not w.startswith("-")] == ["."], package


def test_dockerignore_keeps_tests_the_emulator_and_secrets_out(tmp_path: Path) -> None:
    """A context holding what a working copy can hold: only the package files get through."""
    wanted = {
        LOCK.name,
        "setup.py",
        "main.py",
        "source_sp_invoices/__init__.py",
        "source_sp_invoices/spec.json",
        "source_sp_invoices/schemas/invoices.json",
        "source_sp_invoices/streams/__init__.py",
    }
    unwanted = {
        ".env",
        "secrets/config.json",
        "integration_tests/sample_config.json",
        "integration_tests/test_cli.py",
        "unit_tests/test_nfe.py",
        "sp_api_emulator/server.py",
        ".venv/bin/python",
        ".git/config",
        ".demo/config.json",
        ".pytest_cache/v/cache/nodeids",
        "scripts/demo.py",
        "README.md",
        "ruff.toml",
        "pytest.ini",
        TESTS_LOCK.name,
        PYAIRBYTE_LOCK.name,
        "source_sp_invoices/__pycache__/source.cpython-311.pyc",
        "source_sp_invoices/streams/__pycache__/base.cpython-311.pyc",
        "source_sp_invoices.egg-info/PKG-INFO",
        "build/lib/source_sp_invoices/__init__.py",
    }
    for path in wanted | unwanted:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    context = build_context(tmp_path)
    assert wanted <= context
    assert not context & unwanted, f"the build context lets in {sorted(context & unwanted)}"


# ---- the replayed build -----------------------------------------------------------------------


@dataclass
class ReplayedImage:
    """The image as the replay left it: its file system, Python, ENV, user and entrypoint."""

    root: Path
    python: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    entrypoint: list[str] = field(default_factory=list)
    build_seconds: float = 0.0

    def files(self) -> set[str]:
        """Every file under WORKDIR, relative to it."""
        return {
            path.relative_to(self.workdir).as_posix()
            for path in self.workdir.rglob("*")
            if path.is_file()
        }

    def run(self, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
        """Run the ENTRYPOINT as the container would: in WORKDIR, with the image's ENV only."""
        path = os.pathsep.join([str(self.python), "/usr/bin", "/bin"])
        program = shutil.which(self.entrypoint[0], path=path)
        assert program and Path(program).parent == self.python, (
            f"{self.entrypoint[0]} is not in the image's Python ({self.python})"
        )
        # The base image's user has no home directory: HOME names one that does not exist.
        env = {"PATH": path, "HOME": str(home), "TZ": "UTC", "LANG": "C.UTF-8", **self.env}
        return subprocess.run(
            [program, *self.entrypoint[1:], *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def env_pairs(instruction: Instruction) -> dict[str, str]:
    """ENV KEY=value ... (or the old ENV KEY value) as a dict."""
    words = instruction.words()
    if "=" not in words[0]:
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


def copy_step(instruction: Instruction, context: set[str], image: ReplayedImage) -> None:
    """COPY src... dest, from the build context into the image, with Docker's rules."""
    words = instruction.words()
    flags = [w for w in words if w.startswith("--")]
    assert not flags, f"line {instruction.line}: COPY {flags} is not replayed"
    *sources, dest = words
    target = image.root / dest.lstrip("/") if dest.startswith("/") else image.workdir / dest
    into_directory = dest.endswith("/") or len(sources) > 1
    for source in sources:
        source = os.path.normpath(source)
        assert not set("*?[") & set(source), f"line {instruction.line}: wildcards not replayed"
        if source == ".":
            pairs = [(path, target / path) for path in sorted(context)]
        elif source in context:
            destination = target / Path(source).name if into_directory else target
            pairs = [(source, destination)]
        else:
            inside = sorted(path for path in context if path.startswith(source + "/"))
            pairs = [(path, target / Path(path).relative_to(source)) for path in inside]
        assert pairs, f"line {instruction.line}: {source} is not in the build context"
        for path, destination in pairs:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / path, destination)


def run_step(instruction: Instruction, image: ReplayedImage) -> None:
    """RUN, as written, with the image's Python first on PATH (as the base image has it)."""
    value = instruction.value
    argv = json.loads(value) if value.startswith("[") else ["/bin/sh", "-c", value]
    env = {
        **os.environ,
        **image.env,
        "PATH": os.pathsep.join([str(image.python), os.environ.get("PATH", os.defpath)]),
        "VIRTUAL_ENV": str(image.python.parent),
    }
    done = subprocess.run(
        argv, cwd=image.workdir, env=env, capture_output=True, text=True, timeout=540
    )
    output = (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, f"line {instruction.line}: RUN failed:\n{output}"


def replay(root: Path, python: Path) -> ReplayedImage:
    """Build the Dockerfile into `root`, with the virtual environment `python` as the base."""
    context = build_context(REPO)
    image = ReplayedImage(root=root, python=python, workdir=root)
    started = time.monotonic()
    for instruction in dockerfile_instructions():
        match instruction.keyword:
            case "FROM" | "LABEL" | "USER":
                pass  # the base is the fresh environment; labels and user are checked above
            case "WORKDIR":
                image.workdir = root / instruction.value.lstrip("/")
                image.workdir.mkdir(parents=True, exist_ok=True)
            case "COPY":
                copy_step(instruction, context, image)
            case "RUN":
                run_step(instruction, image)
            case "ENV":
                image.env.update(env_pairs(instruction))
            case "ENTRYPOINT":
                image.entrypoint = exec_form(instruction)
            case other:
                raise AssertionError(f"line {instruction.line}: the replay does not know {other}")
    image.build_seconds = time.monotonic() - started
    return image


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayedImage]:
    """The Dockerfile built once for this module into a fresh virtual environment."""
    base = tmp_path_factory.mktemp("image")
    subprocess.run([sys.executable, "-m", "venv", str(base / "python")], check=True, timeout=120)
    yield replay(base / "root", base / "python" / "bin")


def test_image_holds_the_package_and_nothing_else(image: ReplayedImage) -> None:
    files = image.files()
    outside = sorted(
        path
        for path in files
        if path not in IMAGE_FILES and not path.startswith(IMAGE_PACKAGE + "/")
    )
    assert not outside, f"the image holds more than the package: {outside[:10]}"
    assert files >= IMAGE_FILES
    left_over = sorted(p for p in files if "__pycache__" in p or ".egg-info" in p)
    assert not left_over, f"bytecode or build leftovers in the image: {left_over}"
    package = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / IMAGE_PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert package <= files, f"left out of the image: {sorted(package - files)}"


def test_image_holds_exactly_the_locked_versions(image: ReplayedImage) -> None:
    """The image's Python holds the lock's packages at their versions and the package, no more."""
    python = str(image.python / "python")
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    installed = {canonicalize_name(p["name"]): p["version"] for p in json.loads(listed.stdout)}
    installed.pop("pip")  # the base image's installer: it installs, it is not installed
    assert installed.pop(setup_name()) == setup_version()
    locked = {name: str(package.version) for name, package in read_lock(LOCK).items()}
    assert installed == locked, {
        "not locked": sorted(set(installed) - set(locked)),
        "not installed": sorted(set(locked) - set(installed)),
        "other version": sorted(n for n in installed.keys() & locked if installed[n] != locked[n]),
    }
    checked = subprocess.run(
        [python, "-m", "pip", "check", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout


def test_image_answers_spec(image: ReplayedImage, tmp_path: Path) -> None:
    home = tmp_path / "nonexistent"
    done = image.run("spec", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    specs = [m["spec"] for m in parse_messages(done.stdout) if m["type"] == "SPEC"]
    assert len(specs) == 1, done.stdout[-3000:]
    packaged = json.loads((REPO / IMAGE_PACKAGE / "spec.json").read_text())
    assert specs[0]["connectionSpecification"] == packaged["connectionSpecification"]
    assert not home.exists(), "the connector wrote to HOME, which the image's user does not have"


def test_image_checks_the_emulator(
    image: ReplayedImage, config: dict[str, Any], tmp_path: Path
) -> None:
    before = image.files()
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(config))
    home = tmp_path / "nonexistent"
    done = image.run("check", "--config", str(config_file), home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    messages = parse_messages(done.stdout)
    statuses = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
    assert [s["status"] for s in statuses] == ["SUCCEEDED"], done.stdout[-3000:]
    assert not home.exists(), "the connector wrote to HOME, which the image's user does not have"
    assert image.files() == before, "the connector wrote into WORKDIR, which is root's"
