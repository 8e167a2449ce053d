"""Airbyte's connector QA on this checkout, offline: what `make qa` runs.

Airbyte's CI holds each connector of its monorepo to the checks of `airbyte-ops local connector
qa` (the PyPI package airbyte-internal-ops, whose `ENABLED_CHECKS` this script runs). Those
checks read a connector where the monorepo keeps it, relative to the working directory: the code
in airbyte-integrations/connectors/<name>/, the user documentation in
docs/integrations/<type>s/<page>.md, the page that metadata.yaml's documentationUrl names on
docs.airbyte.com. So the script copies the checkout (its tracked and unignored files) into that
layout in a temporary directory, points documentationUrl at docs.airbyte.com and sets
ab_internal.sl to --sl (300: the documentation content checks that Airbyte runs on the
connectors it maintains), and runs every check there.

Offline, on purpose, so the result depends on the checkout alone: the registry lookups are
answered with what is true of this connector (not in Airbyte's registry, so neither released nor
used on Cloud), and any other host lookup is refused. A check that needed the network is OFFLINE:
neither passed nor failed.

    .venv-qa/bin/python scripts/airbyte_qa.py [--sl 300]    (make qa installs .venv-qa)

One line per check; exit 1 when a check fails or crashes, unless ACCEPTED says why it may.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
AIRBYTE_DOCS = "https://docs.airbyte.com/integrations"

# Checks this project fails by design, and why. A name the package does not know stops the run:
# the list must not outlive the checks it excuses.
ACCEPTED = {
    "CheckConnectorUsesPoetry": "the package is built from setup.py, not Poetry (the design's)",
    "CheckConnectorLicenseMatchInPyproject": (
        "no pyproject.toml: the license is metadata.yaml's (MIT), the only place it is stated"
    ),
    "CheckConnectorVersionMatchInPyproject": (
        "no pyproject.toml: the version is setup.py's VERSION, which "
        "integration_tests/test_metadata.py holds equal to metadata.yaml's dockerImageTag"
    ),
    "CheckConnectorUsesPythonBaseImage": (
        "the Dockerfile builds FROM Airbyte's python-connector-base, pinned by the digest of "
        "metadata.yaml's baseImage (integration_tests/test_dockerfile.py checks both)"
    ),
}


STATUSES = ("PASS", "ACCEPTED", "SKIP", "OFFLINE", "FAIL", "CRASH")


@dataclass
class Outcome:
    check: str
    status: str  # one of STATUSES
    message: str


def lay_out(repo: Path, tree: Path, sl: int | None) -> str:
    """Copy the checkout into `tree` as Airbyte's monorepo holds a connector; return its name."""
    meta = yaml.safe_load((repo / "metadata.yaml").read_text("utf-8"))
    data = meta["data"]
    name = data["dockerRepository"].split("/")[-1]  # source-sp-invoices
    kind = data["connectorType"]  # source
    page = name.removeprefix(f"{kind}-")  # sp-invoices
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    code = tree / "airbyte-integrations" / "connectors" / name
    for relative in filter(None, listed.split("\0")):
        if (repo / relative).is_file():  # a file deleted but not yet committed is skipped
            (code / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / relative, code / relative)
    # The page is where documentationUrl points inside this repository (…/blob/<branch>/<path>).
    doc = repo / data["documentationUrl"].split("/blob/", 1)[1].split("/", 1)[1]
    docs = tree / "docs" / "integrations" / f"{kind}s"
    docs.mkdir(parents=True)
    shutil.copy2(doc, docs / f"{page}.md")
    data["documentationUrl"] = f"{AIRBYTE_DOCS}/{kind}s/{page}"
    if sl is not None:
        data.setdefault("ab_internal", {})["sl"] = sl
    (code / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), "utf-8")
    subprocess.run(["git", "init", "-q", str(tree)], check=True)  # some checks ask git
    return name


def _loopback(host: Any) -> bool:
    host = host.decode() if isinstance(host, bytes) else host
    if host in (None, "localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@contextmanager
def offline(refused: list[str]) -> Iterator[None]:
    """Refuse every host lookup but loopback's, noting the hosts refused."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _loopback(host):
            refused.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"offline: {host} is not looked up")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


def run_checks(name: str) -> list[Outcome]:
    """Every check of the package on connector `name`, from the monorepo's root (the cwd)."""
    os.environ["DO_NOT_TRACK"] = "1"  # the package's usage telemetry, off before it loads
    warnings.simplefilter("ignore", FutureWarning)  # its Google clients on Python 3.11
    from airbyte_ops_mcp.connector_ops import utils  # noqa: PLC0415 (only in .venv-qa)
    from airbyte_ops_mcp.connector_qa.checks import ENABLED_CHECKS  # noqa: PLC0415
    from airbyte_ops_mcp.connector_qa.models import CheckStatus  # noqa: PLC0415

    unknown = set(ACCEPTED) - {type(check).__name__ for check in ENABLED_CHECKS}
    if unknown:
        raise SystemExit(f"ACCEPTED names checks the package does not have: {sorted(unknown)}")
    # Not in Airbyte's registry (metadata.yaml: remoteRegistries off, Cloud disabled).
    utils.Connector.is_released = property(lambda self: False)
    utils.Connector.cloud_usage = property(lambda self: None)
    connector = utils.Connector(name)
    statuses = {CheckStatus.PASSED: "PASS", CheckStatus.FAILED: "FAIL", CheckStatus.SKIPPED: "SKIP"}
    outcomes = []
    for check in ENABLED_CHECKS:
        check_name = type(check).__name__
        refused: list[str] = []
        with offline(refused):
            try:
                result = check.run(connector)
                status, message = statuses[result.status], str(result.message)
            except Exception as error:  # a check that crashes, or that needed the network
                status, message = "CRASH", f"{type(error).__name__}: {error}"
        if refused:
            hosts = ", ".join(sorted(set(refused)))
            status, message = "OFFLINE", f"needs {hosts}, not reached offline ({status})"
        elif status in ("FAIL", "CRASH") and check_name in ACCEPTED:
            status, message = "ACCEPTED", f"{message} -- by design: {ACCEPTED[check_name]}"
        outcomes.append(Outcome(check_name, status, message))
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sl", type=int, help="the ab_internal.sl to check at (300: doc content)")
    parser.add_argument("--repo", type=Path, default=ROOT, help="the checkout (default: this one)")
    args = parser.parse_args()
    try:
        version = package_metadata.version("airbyte-internal-ops")
    except package_metadata.PackageNotFoundError:
        print("airbyte-internal-ops is not installed here: run `make qa`", file=sys.stderr)
        return 2
    tree = Path(tempfile.mkdtemp(prefix="airbyte-qa-"))
    try:
        name = lay_out(args.repo.resolve(), tree, args.sl)
        os.chdir(tree)  # the checks read ./airbyte-integrations and ./docs
        outcomes = run_checks(name)
    finally:
        os.chdir(ROOT)
        shutil.rmtree(tree, ignore_errors=True)
    for outcome in outcomes:
        lines = outcome.message.strip().splitlines() or [""]
        shown = lines if outcome.status in ("FAIL", "CRASH") else lines[:1]
        print(f"{outcome.status:9} {outcome.check}: " + "\n          ".join(shown))
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    print(
        f"airbyte-internal-ops {version}, sl {args.sl or 'as in metadata.yaml'}: "
        + ", ".join(f"{count} {status.lower()}" for status, count in counts.items())
    )
    return 1 if counts["FAIL"] or counts["CRASH"] else 0


if __name__ == "__main__":
    sys.exit(main())
