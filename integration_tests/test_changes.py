"""Incremental syncs pay only for what changed, through the CLI against the emulator, every
stream selected, under every reading of the model: a sync with nothing new creates no export,
fetches no document and emits no invoice; late invoices and cancellations in the days looked
back at export only their days again and emit only themselves; the union of the syncs is
complete and exact. Kills, earlier versions' states, failing listings and the opt-out:
test_changes_recovery.py."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from integration_tests.conftest import ALL_STREAMS, CliRun, catalog
from integration_tests.test_one_pass import (
    DOCUMENT_STREAMS,
    document_fetches,
    items_of,
)
from sp_api_emulator import Dataset, EmulatorServer, Readings
from sp_api_emulator.server import BARE_DATE_ZONES

SCALE = 240.0
FIRST_DAY = date(2024, 1, 1)
DAYS = 10
END = "2024-01-11T00:00:00Z"  # the last whole day is 2024-01-10; the lookback 08, 09 and 10
THREE = ("invoices", *DOCUMENT_STREAMS)

READINGS = [
    {},
    {"invoice_filter_date": "creation"},
    {"bare_date_zone": "America/Sao_Paulo"},
    {"export_dates": "date_time"},
    {"pagination": "same_arguments"},
    {"document_body": "xml"},
]
IDS = ["model", "creation-dates", "Brazil-days", "date-times", "nextToken-same-arguments", "xml"]


def emulator_for(dataset: Dataset, **readings: Any) -> EmulatorServer:
    server = EmulatorServer(
        dataset,
        time_scale=SCALE,
        max_invoices_per_document=40,
        export_queue_seconds=1,
        export_processing_seconds=(5, 10),
        readings=Readings(**readings),
    )
    server.signer.ttl = 600
    return server


class Seller:
    """A seller's syncs, every stream selected, each from the state the last one left."""

    def __init__(self, cli, server: EmulatorServer, **extra: Any) -> None:
        self.cli, self.server = cli, server
        start = extra.pop("start", FIRST_DAY)
        self.first = start
        self.config = server.connector_config(
            f"{start.isoformat()}T00:00:00Z", replication_end_date=END, **extra
        )
        self.state: list[dict[str, Any]] | None = None
        self.runs: list[CliRun] = []

    def sync(self) -> CliRun:
        before = self.server.stats.count("createInvoicesExport", 202)
        documents = len(document_fetches(self.server))
        run = self.cli.run("read", self.config, catalog=catalog(*ALL_STREAMS), state=self.state)
        assert run.returncode == 0, run.errors()
        run.exports = self.server.stats.count("createInvoicesExport", 202) - before  # type: ignore[attr-defined]
        run.documents = len(document_fetches(self.server)) - documents  # type: ignore[attr-defined]
        self.state = latest_states(run, self.state)
        self.runs.append(run)
        for state in self.state:  # a sync that ended leaves nothing to resume
            assert "resume_from" not in state["stream"]["stream_state"], state
        return run


def latest_states(run: CliRun, before: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The state messages a next sync is given: each stream's latest, else the one before."""
    latest = {
        m["state"]["stream"]["stream_descriptor"]["name"]: m["state"] for m in run.of_type("STATE")
    }
    for message in before or []:
        latest.setdefault(message["stream"]["stream_descriptor"]["name"], message)
    return list(latest.values())


def truth(server: EmulatorServer, first: date = FIRST_DAY) -> set[str]:
    """The invoices the exports of the sync's days hold under the server's reading."""
    readings = server.readings
    zone = BARE_DATE_ZONES[readings.bare_date_zone]
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    exported = server.dataset.export_invoices(
        first, last, by=readings.invoice_filter_date, zone=zone
    )
    return {invoice["id"] for invoice in exported}


def assert_union_exact(seller: Seller) -> None:
    """Every invoice of the days, in every document stream, as it is now: the latest record
    of each invoice in the `invoices` stream has its current status."""
    server = seller.server
    expected = truth(server, seller.first)
    documents = {r["invoiceId"] for run in seller.runs for r in run.records("invoice_documents")}
    assert documents == expected
    items = {
        (r["invoiceId"], r["itemNumber"])
        for run in seller.runs
        for r in run.records("invoice_items")
    }
    assert items == items_of(server.dataset, expected)
    latest: dict[str, dict[str, Any]] = {}
    for run in seller.runs:
        for record in run.records("invoices"):
            latest[record["id"]] = record
    end = datetime(2024, 1, 11, tzinfo=UTC)
    listed = server.dataset.invoices(
        datetime.combine(seller.first, datetime.min.time(), UTC),
        end,
        by=server.readings.invoice_filter_date,
    )
    for invoice in listed:
        assert latest[invoice["id"]]["status"] == invoice["status"], invoice["id"]


def listed(server: EmulatorServer) -> set[str]:
    """The invoices getInvoices lists from the start date to the end date."""
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 11, tzinfo=UTC)
    return {
        i["id"] for i in server.dataset.invoices(start, end, by=server.readings.invoice_filter_date)
    }


def counts(run: CliRun) -> dict[str, int]:
    return {stream: len(run.records(stream)) for stream in THREE}


@pytest.mark.parametrize("readings", READINGS, ids=IDS)
def test_syncs_pay_only_for_what_changed_under_every_reading(cli, readings):
    # Under the XML-body reading every invoice is a document of its own, at a document a
    # (scaled) minute: a backfill of the last four days only keeps it as short as the others'.
    xml = readings.get("document_body") == "xml"
    per_day = (20, 30) if xml else (30, 60)
    dataset = Dataset.generate(seed=31, start=FIRST_DAY, days=DAYS, invoices_per_day=per_day)
    with emulator_for(dataset, **readings) as server:
        seller = Seller(cli, server, **({"start": date(2024, 1, 7)} if xml else {}))
        first = seller.sync()
        assert first.exports >= 1
        # (a) Nothing new since: no export, no document, no record of the three streams.
        quiet = seller.sync()
        assert (quiet.exports, quiet.documents, counts(quiet)) == (0, 0, dict.fromkeys(THREE, 0))
        quiet = seller.sync()
        assert (quiet.exports, quiet.documents, counts(quiet)) == (0, 0, dict.fromkeys(THREE, 0))
        # (b) Late invoices on one day looked back at (one at 01:30 UTC, which Brazil's
        # reading puts in the day before), cancellations on another.
        late = [
            dataset.add_invoice(f"2024-01-09T{hour}:30:00Z")["id"] for hour in ("01", "13", "22")
        ]
        canceled = [
            i["id"] for i in dataset.invoices("2024-01-10T04:00:00Z", "2024-01-10T23:00:00Z")[:3]
        ]
        for invoice_id in canceled:
            dataset.set_status(invoice_id, "CANCELED")
        changed = seller.sync()
        assert changed.exports <= 2
        new = set(late) & truth(server)  # under creation dates, some are created after the end
        emitted = {r["invoiceId"] for r in changed.records("invoice_documents")}
        assert emitted >= new | (set(canceled) & truth(server))
        assert emitted <= set(late) | set(canceled)  # only what changed
        statuses = {r["id"]: r["status"] for r in changed.records("invoices")}
        # Under creation dates, an invoice created after the end date is not listed.
        assert all(statuses[i] == "CANCELED" for i in set(canceled) & listed(server))
        assert set(statuses) == (set(late) | set(canceled)) & listed(server)
        # (c) Quiet again.
        quiet = seller.sync()
        assert (quiet.exports, quiet.documents, counts(quiet)) == (0, 0, dict.fromkeys(THREE, 0))
        assert_union_exact(seller)
        assert server.stats.count(status=429) == 0
