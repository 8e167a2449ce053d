"""Integration harness: a real emulator on 127.0.0.1 and the installed CLI run as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from conftest import validate_records
from source_sp_invoices.read_together import DOCUMENT_STREAMS
from sp_api_emulator import Dataset, EmulatorServer

CLI = Path(sys.executable).parent / "source-sp-invoices"
START = "2024-01-01T00:00:00Z"
END = "2024-01-22T00:00:00Z"
TIME_SCALE = 60.0  # one emulator minute per real second
# Every stream, as a seller who ticks them all selects them; the document streams are the
# package's own list.
ALL_STREAMS = ("invoice_attributes", "invoices", "invoice_exports", *DOCUMENT_STREAMS)


@dataclass
class CliRun:
    """What one CLI command printed: Airbyte messages, exit code and stderr."""

    messages: list[dict[str, Any]]
    returncode: int
    stdout: str
    stderr: str

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def records(self, stream: str) -> list[dict[str, Any]]:
        """The stream's records, each checked against the stream's JSON schema."""
        data = [
            m["record"]["data"] for m in self.of_type("RECORD") if m["record"]["stream"] == stream
        ]
        validate_records(stream, data)
        return data

    def states(self, stream: str) -> list[dict[str, Any]]:
        return [
            m["state"]["stream"]["stream_state"]
            for m in self.of_type("STATE")
            if m["state"]["stream"]["stream_descriptor"]["name"] == stream
        ]

    def errors(self) -> list[dict[str, Any]]:
        return [m["trace"]["error"] for m in self.of_type("TRACE") if m["trace"]["type"] == "ERROR"]

    def logs(self) -> str:
        return "\n".join(m["log"]["message"] for m in self.of_type("LOG"))


def parse_messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def catalog(*streams: str, mode: str = "incremental") -> dict[str, Any]:
    full_refresh_only = {"invoice_attributes"}
    return {
        "streams": [
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "full_refresh" if name in full_refresh_only else mode,
                "destination_sync_mode": "append",
            }
            for name in streams
        ]
    }


def state_of(stream: str, blob: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": blob}}
    ]


class Cli:
    """Runs `source-sp-invoices` with files written to a temporary directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, name: str, content: Any) -> str:
        path = self.directory / name
        path.write_text(json.dumps(content))
        return str(path)

    def command(
        self,
        command: str,
        config: dict[str, Any],
        catalog: dict[str, Any] | None = None,
        state: list[dict[str, Any]] | None = None,
        debug: bool = False,
    ) -> list[str]:
        args = [str(CLI), command]
        if debug:  # the CDK's debug logging: every SP-API request and answer, bodies included
            args.append("--debug")
        if command != "spec":
            args += ["--config", self.write("config.json", config)]
        if catalog is not None:
            args += ["--catalog", self.write("catalog.json", catalog)]
        if state is not None:
            args += ["--state", self.write("state.json", state)]
        return args

    def run(
        self,
        command: str,
        config: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> CliRun:
        done = subprocess.run(
            self.command(command, config or {}, **kwargs),
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, **(env or {})},
        )
        return CliRun(parse_messages(done.stdout), done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    assert CLI.exists(), f"{CLI} is missing: install the connector (make test does)"
    return Cli(tmp_path)


def make_dataset() -> Dataset:
    # 21 days of 0-80 invoices: 7-day windows need two pages of 200 now and then.
    return Dataset.generate(seed=11, start=date(2024, 1, 1), days=21, invoices_per_day=(0, 80))


@pytest.fixture
def dataset() -> Dataset:
    return make_dataset()


@pytest.fixture
def emulator(dataset: Dataset) -> Iterator[EmulatorServer]:
    with EmulatorServer(dataset, time_scale=TIME_SCALE, log_requests=True) as server:
        yield server


@pytest.fixture
def config(emulator: EmulatorServer) -> dict[str, Any]:
    return emulator.connector_config(START, replication_end_date=END)


@pytest.fixture
def quick_emulator(dataset: Dataset) -> Iterator[EmulatorServer]:
    """The emulator with exports that process in 5 to 10 emulator seconds (about 0.1 s) and
    document URLs that live 120 (2 s, so that none expires on its own on a busy machine; the
    faults that expire URLs do so whatever their lifetime): for tests about what the connector
    does, not about waiting."""
    with quick_server(dataset) as server:
        yield server


@contextmanager
def quick_server(dataset: Dataset, **options: Any) -> Iterator[EmulatorServer]:
    """The emulator of `quick_emulator`, with other options of EmulatorServer if given."""
    with EmulatorServer(
        dataset,
        time_scale=TIME_SCALE,
        log_requests=True,
        export_queue_seconds=1,
        export_processing_seconds=(5, 10),
        **options,
    ) as server:
        server.signer.ttl = 120
        yield server
