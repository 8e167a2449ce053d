"""The locks against what they are written from: setup.py's ranges and the Makefile's PyAirbyte.

setup.py keeps ranges a user's pip can resolve; the locks pin one version of every package for
the image (requirements.lock), for .venv (requirements-tests.lock: the same plus the tests
extra) and for PyAirbyte's venv (requirements-pyairbyte.lock). They disagree when setup.py
changed and `make lock` was not run: a range the locked version falls outside of, a requirement
the lock lacks (or holds only for another package), one the lock still holds after it left
setup.py. Each test names what to fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from integration_tests.packaging import (
    FROM_SETUP_PY,
    LOCK,
    PYAIRBYTE_LOCK,
    TESTS_LOCK,
    LockedPackage,
    makefile_variable,
    read_lock,
    setup_requirements,
)

# The platform the locks are for (`make lock`'s --python-version and --python-platform): a
# requirement whose marker leaves it out there is not expected in them.
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
RELOCK = "run `make lock` (then `make test`)"


def disagreements(
    requirements: list[Requirement], lock: dict[NormalizedName, LockedPackage]
) -> list[str]:
    """What a lock and the requirements it was written from disagree on, one line each."""
    wanted = {
        canonicalize_name(r.name): r
        for r in requirements
        if r.marker is None or r.marker.evaluate(TARGET)
    }
    roots = {name for name, locked in lock.items() if FROM_SETUP_PY in locked.via}
    problems = []
    for name, requirement in sorted(wanted.items()):
        locked = lock.get(name)
        if locked is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(locked.version, prereleases=True):
            problems.append(f"{requirement} does not admit the locked {locked.requirement}")
        elif name not in roots:
            problems.append(f"{requirement} is in the lock only as another package's dependency")
    problems += [f"the lock still has {name} for setup.py" for name in sorted(roots - set(wanted))]
    return problems


def pins(lock: dict[NormalizedName, LockedPackage]) -> dict[str, tuple[Version, frozenset[str]]]:
    """Each package's version and hashes: what pip installs and checks."""
    return {name: (locked.version, locked.hashes) for name, locked in lock.items()}


@pytest.mark.parametrize(
    ("lock_path", "extra"), [(LOCK, None), (TESTS_LOCK, "tests")], ids=["install", "tests"]
)
def test_lock_agrees_with_setup_py(lock_path: Path, extra: str | None) -> None:
    problems = disagreements(setup_requirements(extra), read_lock(lock_path))
    assert not problems, f"{lock_path.name} and setup.py disagree ({RELOCK}):\n" + "\n".join(
        problems
    )


def test_disagreements_finds_each_kind_of_mismatch() -> None:
    """The check bites: a range that excludes the lock, new requirements, a dropped one."""
    lock = read_lock(LOCK)
    exact = {
        name: Requirement(f"{name}=={locked.version}")
        for name, locked in lock.items()
        if FROM_SETUP_PY in locked.via
    }
    assert disagreements(list(exact.values()), lock) == []
    # A requirement for another platform is not expected in a lock for this one.
    windows_only = Requirement("pywin32>=306; sys_platform == 'win32'")
    assert disagreements([*exact.values(), windows_only], lock) == []

    cdk = lock["airbyte-cdk"].version
    edited = {**exact, "airbyte-cdk": Requirement(f"airbyte-cdk>{cdk}")}
    del edited["lxml"]
    new = [Requirement("a-new-dependency>=1"), Requirement("orjson>=3")]  # orjson: the CDK's
    assert disagreements([*edited.values(), *new], lock) == [
        "a-new-dependency>=1 is not in the lock",
        f"airbyte-cdk>{cdk} does not admit the locked airbyte-cdk=={cdk}",
        "orjson>=3 is in the lock only as another package's dependency",
        "the lock still has lxml for setup.py",
    ]


def test_tests_lock_holds_the_install_lock_unchanged() -> None:
    """make test installs the versions and files the image installs, and more for the tests."""
    install, tests = pins(read_lock(LOCK)), pins(read_lock(TESTS_LOCK))
    differ = sorted(name for name, pin in install.items() if tests.get(name) != pin)
    assert not differ, f"{TESTS_LOCK.name} strays from {LOCK.name} on {differ} ({RELOCK})"


def test_pyairbyte_lock_is_of_the_makefiles_pyairbyte() -> None:
    lock = read_lock(PYAIRBYTE_LOCK)
    version = makefile_variable("PYAIRBYTE_VERSION")
    assert "airbyte" in lock and str(lock["airbyte"].version) == version, (
        f"{PYAIRBYTE_LOCK.name} does not lock airbyte=={version} ({RELOCK})"
    )
    # uv annotates every package but the ones asked for: only PyAirbyte was.
    assert [name for name, locked in lock.items() if not locked.via] == ["airbyte"]


@pytest.mark.parametrize("lock_path", [LOCK, TESTS_LOCK, PYAIRBYTE_LOCK], ids=lambda p: p.name)
def test_every_package_is_pinned_with_its_hashes(lock_path: Path) -> None:
    """pip --require-hashes needs an == pin and a hash for every package; sha256 is its default."""
    lock = read_lock(lock_path)
    assert len(lock) > 20, f"{lock_path.name} holds too little to be a whole install"
    for locked in lock.values():
        assert locked.version is not None  # an == pin, or read_lock's property fails
        assert locked.hashes and all(h.startswith("sha256:") for h in locked.hashes), locked
        assert locked.requirement.marker is None, f"{locked.requirement}: a lock for one platform"


def test_install_lock_holds_setuptools() -> None:
    """airbyte-cdk requires setuptools (pip check fails without it), and it builds the package."""
    assert "setuptools" in read_lock(LOCK)
