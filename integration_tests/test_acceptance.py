"""Airbyte's acceptance tests, in-process: the CDK's standard source suite and the checks it lacks.

acceptance-test-config.yml lists the configs. They point at http://127.0.0.1:8765, which stands
for the emulator this module starts once for the session on a free port: the suite builds its
scenarios from the file while collecting, before that port exists, so each test hands the suite
its scenario pointed at the emulator (`AcceptanceEmulator.bind`).

The suite of airbyte-cdk 7.39.1 reads the spec, connection, discovery, basic_read and
full_refresh sections. The tests after the class check what it leaves out, from the same file:
the incremental section (two reads in a row, and a read from a state in the future), and CAT's
check that two full-refresh reads return the same records. Its tests of the Docker image are
skipped, each with the reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from airbyte_cdk.models import (
    AirbyteStateMessage,
    AirbyteStateMessageSerializer,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteCatalogSerializer,
)
from airbyte_cdk.test.entrypoint_wrapper import EntrypointOutput, read
from airbyte_cdk.test.standard_tests import ConnectorTestScenario, SourceTestSuiteBase
from airbyte_cdk.test.state_builder import StateBuilder

from conftest import validate_records
from source_sp_invoices import SourceSpInvoices
from source_sp_invoices.config import parse_config
from sp_api_emulator import API_PREFIX, MARKETPLACE_ID, Dataset, EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = "http://127.0.0.1:8765"  # in the config files: stands for the session's emulator
ENDPOINT_KEYS = ("api_endpoint", "lwa_endpoint")
# Five emulator minutes a real second: getInvoicesDocument's one call a minute takes 0.2 s, and
# an access token (an emulator hour) lasts 12 s, longer than any read here.
TIME_SCALE = 300.0
WALL_CLOCK_LAG = timedelta(seconds=2)
# Each read creates its own exports, so documents and items of two reads name different ones.
EXPORT_FIELDS = frozenset({"exportId", "invoicesDocumentId"})

NO_IMAGE = (
    "needs a Docker engine to build and run the connector image (CI machines have none), and a "
    "container could not reach the emulator on the host's loopback anyway; the same command "
    "runs in-process in this class"
)
NO_REGISTRY = (
    "compares the image's spec with the one published on connectors.airbyte.com: needs a Docker "
    "engine and that registry (not reachable from CI), and no version is published yet"
)


class AcceptanceEmulator:
    """The session's emulator, and the acceptance configs pointed at it."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server

    def point(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The config with the placeholder origin of its endpoints replaced by the emulator's."""
        for key in ENDPOINT_KEYS:
            assert str(config.get(key, "")).startswith(PLACEHOLDER), (
                f"an acceptance config must set {key} to {PLACEHOLDER}..., the emulator's "
                "stand-in: no test may reach Amazon"
            )
        return {
            **config,
            **{k: self.server.url + config[k][len(PLACEHOLDER) :] for k in ENDPOINT_KEYS},
        }

    def config(self, path: str) -> dict[str, Any]:
        """A config file of acceptance-test-config.yml, pointed at the emulator."""
        return self.point(load(path))

    def bind(self, scenario: ConnectorTestScenario) -> ConnectorTestScenario:
        """The suite's scenario with its config pointed at the emulator (its copies keep it)."""
        config = scenario.get_config_dict(connector_root=ROOT, empty_if_missing=False)
        return scenario.model_copy(update={"config_dict": self.point(config)})


def seed_export(server: EmulatorServer) -> None:
    """An export made before any sync (in Seller Central, say).

    invoice_exports lists every export of the seller, whoever made it: with one there already,
    each read of it has a record, whatever the order of the streams or of the tests.
    """
    response = requests.post(
        f"{server.url}{API_PREFIX}/exports",
        json={"marketplaceId": MARKETPLACE_ID, "dateStart": "2024-01-01", "dateEnd": "2024-01-01"},
        headers={"x-amz-access-token": server.issue_token()},
        timeout=10,
    )
    response.raise_for_status()


@pytest.fixture(scope="session")
def acceptance_emulator() -> Iterator[AcceptanceEmulator]:
    """One emulator for every acceptance test: January 2024, the range of the config files."""
    dataset = Dataset.generate(seed=8, start=date(2024, 1, 1), days=31, invoices_per_day=(1, 3))
    # The connector lists exports created up to now in whole seconds. The emulator's wall clock
    # (which dates exports) runs WALL_CLOCK_LAG behind the real one, so the seeded export's
    # second is over before any read lists exports: no waiting for it to pass.
    epoch = datetime.now(UTC) - WALL_CLOCK_LAG
    with EmulatorServer(dataset, time_scale=TIME_SCALE, epoch=epoch) as server:
        seed_export(server)
        yield AcceptanceEmulator(server)


class TestSourceSpInvoices(SourceTestSuiteBase):
    """Airbyte's standard source tests (airbyte_cdk.test.standard_tests), in-process."""

    connector = SourceSpInvoices
    connector_name = "source-sp-invoices"  # the suite's default is the checkout's folder name

    def test_check(
        self, scenario: ConnectorTestScenario, acceptance_emulator: AcceptanceEmulator
    ) -> None:
        super().test_check(acceptance_emulator.bind(scenario))

    def test_config_matches_spec(
        self, scenario: ConnectorTestScenario, acceptance_emulator: AcceptanceEmulator
    ) -> None:
        # The suite passes the scenario's catalog on to `spec`, whose arguments refuse it
        # (airbyte-cdk 7.39.1): that catalog is for reads, `spec` needs none.
        bound = acceptance_emulator.bind(scenario)
        super().test_config_matches_spec(bound.model_copy(update={"configured_catalog_path": None}))

    def test_discover(
        self, scenario: ConnectorTestScenario, acceptance_emulator: AcceptanceEmulator
    ) -> None:
        super().test_discover(acceptance_emulator.bind(scenario))

    def test_basic_read(
        self, scenario: ConnectorTestScenario, acceptance_emulator: AcceptanceEmulator
    ) -> None:
        super().test_basic_read(acceptance_emulator.bind(scenario))

    def test_fail_read_with_bad_catalog(
        self, scenario: ConnectorTestScenario, acceptance_emulator: AcceptanceEmulator
    ) -> None:
        super().test_fail_read_with_bad_catalog(acceptance_emulator.bind(scenario))

    @pytest.mark.skip(reason=NO_IMAGE)
    def test_docker_image_build_and_spec(self) -> None:
        """Not run; see the reason."""

    @pytest.mark.skip(reason=NO_IMAGE)
    def test_docker_image_build_and_check(self) -> None:
        """Not run; see the reason."""

    @pytest.mark.skip(reason=NO_IMAGE)
    def test_docker_image_build_and_config_matches_spec(self) -> None:
        """Not run; see the reason."""

    @pytest.mark.skip(reason=NO_IMAGE)
    def test_docker_image_build_and_discover(self) -> None:
        """Not run; see the reason."""

    @pytest.mark.skip(reason=NO_IMAGE)
    def test_docker_image_build_and_read(self) -> None:
        """Not run; see the reason."""

    @pytest.mark.skip(reason=NO_REGISTRY)
    def test_docker_image_spec_backward_compatibility(self) -> None:
        """Not run; see the reason."""


# --- what the suite does not check: the incremental section, and repeated full refreshes ------


def load(path: str) -> Any:
    """A JSON file named in acceptance-test-config.yml (paths are relative to the repo root)."""
    return json.loads((ROOT / path).read_text())


def entries(section: str) -> list[dict[str, Any]]:
    """The tests of one section of acceptance-test-config.yml."""
    sections = TestSourceSpInvoices.acceptance_test_config["acceptance_tests"]
    return list(sections.get(section, {}).get("tests", []))


def entry_id(entry: Mapping[str, Any]) -> str:
    return Path(entry["config_path"]).stem


def catalog_of(entry: Mapping[str, Any], *, incremental: bool) -> ConfiguredAirbyteCatalog:
    """The entry's configured catalog: its incremental streams, or all streams in full refresh."""
    streams = load(entry["configured_catalog_path"])["streams"]
    if incremental:
        streams = [stream for stream in streams if stream["sync_mode"] == "incremental"]
    else:
        streams = [{**stream, "sync_mode": "full_refresh"} for stream in streams]
    return ConfiguredAirbyteCatalogSerializer.load({"streams": streams})


def read_ok(
    config: Mapping[str, Any],
    catalog: ConfiguredAirbyteCatalog,
    state: list[AirbyteStateMessage] | None = None,
) -> EntrypointOutput:
    output = read(SourceSpInvoices(), config, catalog, state)
    messages = [error.trace.error.message for error in output.errors]
    assert not messages, f"the read failed: {messages}"
    return output


def records_by_stream(output: EntrypointOutput) -> dict[str, list[dict[str, Any]]]:
    """Each stream's records, every one checked against the stream's schema."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in output.records:
        grouped[message.record.stream].append(message.record.data)
    for stream, records in grouped.items():
        validate_records(stream, records)
    return grouped


def states_by_stream(output: EntrypointOutput) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for message in output.state_messages:
        stream = message.state.stream
        grouped[stream.stream_descriptor.name].append(dict(vars(stream.stream_state)))
    return grouped


def moment(value: str) -> datetime:
    """A cursor value (a date or a date-time) as a UTC date-time, so both kinds compare."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def test_the_config_lists_incremental_and_full_refresh_tests() -> None:
    """The tests below are parametrized by these sections: empty ones would test nothing."""
    assert entries("incremental") and entries("full_refresh")


@pytest.mark.parametrize("entry", entries("incremental"), ids=entry_id)
def test_an_incremental_read_resumes_from_its_final_state(
    entry: dict[str, Any], acceptance_emulator: AcceptanceEmulator
) -> None:
    """CAT's two sequential reads: a second read starts from the first one's final state.

    The connector reads `lookback_days` before the cursor again on purpose (invoices change
    status later), so the second read may return records from that far back, never older.
    """
    config = acceptance_emulator.config(entry["config_path"])
    catalog = catalog_of(entry, incremental=True)
    first = read_ok(config, catalog)
    first_records, first_states = records_by_stream(first), states_by_stream(first)
    for configured in catalog.streams:
        name, cursor = configured.stream.name, configured.cursor_field[0]
        assert first_records[name], f"{name}: the incremental read returned no records"
        cursors = [moment(state[cursor]) for state in first_states[name] if cursor in state]
        assert cursors, f"{name}: no state message carries the cursor {cursor}"
        assert cursors == sorted(cursors), f"{name}: the cursor moved backwards: {cursors}"

    final = {name: states[-1] for name, states in first_states.items()}
    state = StateBuilder()
    for configured in catalog.streams:
        state = state.with_stream_state(configured.stream.name, final[configured.stream.name])
    second = records_by_stream(read_ok(config, catalog, state.build()))
    lookback = parse_config(config).lookback
    for configured in catalog.streams:
        name, cursor = configured.stream.name, configured.cursor_field[0]
        floor = moment(final[name][cursor]) - lookback
        # An export the second read's documents just created may be listed before it starts:
        # it has no cursor value yet, so it is older than nothing.
        older = [r[cursor] for r in second[name] if r.get(cursor) and moment(r[cursor]) < floor]
        assert not older, f"{name}: the second read went back before {floor}: {older[:3]}"
    assert sum(map(len, second.values())) < sum(map(len, first_records.values()))


@pytest.mark.parametrize("entry", entries("incremental"), ids=entry_id)
def test_a_read_from_a_state_in_the_future_returns_no_records(
    entry: dict[str, Any], acceptance_emulator: AcceptanceEmulator
) -> None:
    """CAT's abnormal state: cursors far in the future mean nothing is left to read, no error."""
    config = acceptance_emulator.config(entry["config_path"])
    catalog = catalog_of(entry, incremental=True)
    future = load(entry["future_state"]["future_state_path"])
    state = [AirbyteStateMessageSerializer.load(message) for message in future]
    saved = {m.stream.stream_descriptor.name: vars(m.stream.stream_state) for m in state}
    assert set(saved) == {s.stream.name for s in catalog.streams}, (
        "the future state must cover every incremental stream of the catalog"
    )
    output = read_ok(config, catalog, state)
    assert not output.records, f"{len(output.records)} record(s) read after a future cursor"
    for configured in catalog.streams:
        name, cursor = configured.stream.name, configured.cursor_field[0]
        for emitted in states_by_stream(output)[name]:
            assert moment(emitted[cursor]) >= moment(saved[name][cursor]), (
                f"{name}: the future cursor was moved back to {emitted[cursor]}"
            )


@pytest.mark.parametrize("entry", entries("full_refresh"), ids=entry_id)
def test_two_full_refresh_reads_return_the_same_records(
    entry: dict[str, Any], acceptance_emulator: AcceptanceEmulator
) -> None:
    """CAT's full-refresh test: reading again returns the same records, each once.

    Two exceptions, both of the export pipeline: each read creates its own exports, so records
    of documents and items name other export and document ids, and invoice_exports lists the
    first read's exports again next to the second's.
    """
    config = acceptance_emulator.config(entry["config_path"])
    catalog = catalog_of(entry, incremental=False)
    first, second = (records_by_stream(read_ok(config, catalog)) for _ in range(2))
    for configured in catalog.streams:
        name = configured.stream.name
        key = [path[0] for path in configured.stream.source_defined_primary_key or []]
        assert key, f"{name} declares no primary key"
        keys = [[tuple(record[k] for k in key) for record in run[name]] for run in (first, second)]
        for read_keys in keys:
            assert read_keys, f"{name}: a full-refresh read returned no records"
            assert len(set(read_keys)) == len(read_keys), f"{name}: a record was read twice"
        if name == "invoice_exports":
            assert set(keys[0]) <= set(keys[1]), "the second read lost exports of the first"
            continue
        comparable = [
            sorted(
                json.dumps({k: v for k, v in r.items() if k not in EXPORT_FIELDS}, sort_keys=True)
                for r in run[name]
            )
            for run in (first, second)
        ]
        assert comparable[0] == comparable[1], f"{name}: the two reads returned other records"
