"""Incremental syncs pay only for what changed, through the CLI against the emulator, every
stream selected, under every reading of the model: a sync with nothing new creates no export,
fetches no document and emits no invoice; late invoices and cancellations in the days looked
back at export only their days again and emit only themselves; a sync killed and resumed loses
nothing; states 0.5.0 wrote are read on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from integration_tests.conftest import ALL_STREAMS, START, CliRun, catalog
from integration_tests.test_one_pass import (
    DOCUMENT_STREAMS,
    document_fetches,
    items_of,
    run_until,
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
        self.config = server.connector_config(START, replication_end_date=END, **extra)
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


def truth(server: EmulatorServer) -> set[str]:
    """The invoices the exports of the sync's days hold under the server's reading."""
    readings = server.readings
    zone = BARE_DATE_ZONES[readings.bare_date_zone]
    last = FIRST_DAY + timedelta(days=DAYS - 1)
    exported = server.dataset.export_invoices(
        FIRST_DAY, last, by=readings.invoice_filter_date, zone=zone
    )
    return {invoice["id"] for invoice in exported}


def assert_union_exact(seller: Seller) -> None:
    """Every invoice of the days, in every document stream, as it is now: the latest record
    of each invoice in the `invoices` stream has its current status."""
    server = seller.server
    expected = truth(server)
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
        datetime.combine(FIRST_DAY, datetime.min.time(), UTC),
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
    dataset = Dataset.generate(seed=31, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset, **readings) as server:
        seller = Seller(cli, server)
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


def test_after_a_change_on_the_first_day_looked_back_at_every_day_is_still_looked_back_at(cli):
    """A sync that exports only the first day looked back at again ends with nothing to
    resume: the next sync still looks back at all three days and catches a change on the
    first."""
    dataset = Dataset.generate(seed=37, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset) as server:
        seller = Seller(cli, server)
        seller.sync()
        day = dataset.invoices("2024-01-08T04:00:00Z", "2024-01-08T23:00:00Z")
        dataset.set_status(day[0]["id"], "CANCELED")
        first = seller.sync()
        assert {r["invoiceId"] for r in first.records("invoice_documents")} == {day[0]["id"]}
        dataset.set_status(day[1]["id"], "CANCELED")
        second = seller.sync()
        assert {r["invoiceId"] for r in second.records("invoice_documents")} == {day[1]["id"]}
        assert "of the 3 day(s) looked back at (2024-01-08..2024-01-10)" in second.logs()


def kill_at_first_item(cli, seller: Seller) -> list[dict[str, Any]]:
    """A sync of the seller killed as soon as it emits its first invoice_items record (the
    document it comes from is then in flight)."""

    def first_item(message: dict[str, Any]) -> bool:
        return message["type"] == "RECORD" and message["record"]["stream"] == "invoice_items"

    messages = run_until(cli, seller.config, seller.state, first_item)
    seller.state = latest_states(CliRun(messages, -9, "", ""), seller.state)
    return messages


def test_a_sync_killed_while_it_exports_changed_days_again_resumes_and_is_quiet_after(cli):
    """(d): killed in the middle of a changed day's document, resumed: every change arrives,
    only the document in flight is fetched twice, no export is created twice, and the next
    sync is quiet: what the killed sync listed before its exports is what is kept."""
    dataset = Dataset.generate(seed=32, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset) as server:
        seller = Seller(cli, server)
        seller.sync()
        late = [dataset.add_invoice(f"2024-01-08T{h}:00:00Z")["id"] for h in ("10", "11", "12")]
        canceled = [
            i["id"] for i in dataset.invoices("2024-01-10T05:00:00Z", "2024-01-10T20:00:00Z")
        ]
        for invoice_id in canceled[:2]:
            dataset.set_status(invoice_id, "CANCELED")
        server.stats.reset()
        killed = kill_at_first_item(cli, seller)
        exports_before = len(server.export_requests())
        resumed = seller.sync()
        emitted = {
            m["record"]["data"]["invoiceId"]
            for m in killed
            if m["type"] == "RECORD" and m["record"]["stream"] == "invoice_documents"
        } | {r["invoiceId"] for r in resumed.records("invoice_documents")}
        assert emitted == set(late) | set(canceled[:2])
        fetched = document_fetches(server)
        assert sum(fetched.values()) - len(fetched) <= 1, fetched  # the one in flight
        days = [e.query["dateStart"] for e in server.export_requests()[exports_before - 2 :]]
        assert len(days) == len(set(days)), days  # no window exported twice
        quiet = seller.sync()
        assert (quiet.exports, quiet.documents, counts(quiet)) == (0, 0, dict.fromkeys(THREE, 0))


def as_0_5_0(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """States as 0.5.0 wrote them: the same keys less those this version added."""
    added = {"delivered", "pending", "exportDayZone"}
    return [
        {
            **s,
            "stream": {
                **s["stream"],
                "stream_state": {
                    k: v for k, v in s["stream"]["stream_state"].items() if k not in added
                },
            },
        }
        for s in states
    ]


def test_states_0_5_0_wrote_after_a_backfill_are_read_on_and_cost_one_sync(cli):
    """(e): the first sync from a 0.5.0 state exports the days it looks back at once more (it
    knows nothing of what was delivered of them); the next one is quiet."""
    dataset = Dataset.generate(seed=33, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset) as server:
        seller = Seller(cli, server)
        seller.sync()
        seller.state = as_0_5_0(seller.state or [])
        upgraded = seller.sync()
        assert upgraded.exports >= 1
        again = {r["invoiceId"] for r in upgraded.records("invoice_documents")}
        assert again == {i["id"] for i in dataset.export_invoices("2024-01-08", "2024-01-10")}
        quiet = seller.sync()
        assert (quiet.exports, quiet.documents, counts(quiet)) == (0, 0, dict.fromkeys(THREE, 0))


def test_a_state_0_5_0_wrote_mid_backfill_is_read_on_without_a_loss(cli):
    """(e): a backfill killed mid-document, its state as 0.5.0 wrote it: the resumed sync
    finishes the backfill without a loss. The `invoices` stream listed part of the days looked
    back at before the kill, and 0.5.0 kept nothing of what it emitted: the next sync emits
    those invoices once more, exports nothing, and the one after is quiet."""
    dataset = Dataset.generate(seed=34, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset) as server:
        seller = Seller(cli, server)
        killed = kill_at_first_item(cli, seller)
        seller.state = as_0_5_0(seller.state or [])
        saved = {
            s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"]
            for s in seller.state
        }
        assert "exports" in saved["invoice_documents"]
        resumed = seller.sync()
        documents = {
            m["record"]["data"]["invoiceId"]
            for m in killed
            if m["type"] == "RECORD" and m["record"]["stream"] == "invoice_documents"
        } | {r["invoiceId"] for r in resumed.records("invoice_documents")}
        assert documents == truth(server)
        fetched = document_fetches(server)
        assert sum(fetched.values()) - len(fetched) <= 1, fetched
        after = seller.sync()
        assert (after.exports, after.documents) == (0, 0)
        assert counts(after)["invoice_documents"] == counts(after)["invoice_items"] == 0
        resumed_from = saved["invoices"].get("resume_from", END)
        assert all("2024-01-08" <= r["date"] <= resumed_from for r in after.records("invoices"))
        quiet = seller.sync()
        assert (quiet.exports, quiet.documents, counts(quiet)) == (0, 0, dict.fromkeys(THREE, 0))


def test_a_listing_that_fails_exports_the_days_looked_back_at_as_0_5_0_did(cli):
    """getInvoices refusing the listing: a warning, and the days looked back at are exported
    again and all their invoices emitted, as if they had changed; nothing is lost."""
    dataset = Dataset.generate(seed=35, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset) as server:
        seller = Seller(cli, server)
        seller.sync()
        server.faults.fail_next("getInvoices", 400, count=1000, message="Listing refused.")
        config, state = seller.config, seller.state
        run = cli.run("read", config, catalog=catalog(*DOCUMENT_STREAMS), state=state)
        assert run.returncode == 0, run.errors()
        assert "getInvoices did not list" in run.logs()
        again = {r["invoiceId"] for r in run.records("invoice_documents")}
        assert again == {i["id"] for i in dataset.export_invoices("2024-01-08", "2024-01-10")}


def test_with_every_day_a_sync_with_nothing_new_exports_the_lookback_again(cli):
    """The opt-out: `lookback_exports: every_day` exports and emits the days looked back at at
    every sync, as 0.5.0 did, and keeps nothing to compare."""
    dataset = Dataset.generate(seed=36, start=FIRST_DAY, days=DAYS, invoices_per_day=(30, 60))
    with emulator_for(dataset) as server:
        seller = Seller(cli, server, lookback_exports="every_day")
        seller.sync()
        again = seller.sync()
        assert again.exports >= 1 and again.documents >= 1
        lookback = {i["id"] for i in dataset.export_invoices("2024-01-08", "2024-01-10")}
        assert {r["invoiceId"] for r in again.records("invoice_documents")} == lookback
        final = {
            s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"]
            for s in seller.state
        }
        assert not {"delivered", "pending"} & {k for state in final.values() for k in state}
