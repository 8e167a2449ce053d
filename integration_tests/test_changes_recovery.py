"""Change detection through the CLI against the emulator, every stream selected, when things go
wrong or come from elsewhere: a lookback that changes only its first day, a sync killed while it
exports changed days again, states 0.5.0 wrote (after a backfill, and in the middle of one), a
listing getInvoices refuses, and the opt-out that exports every day looked back at."""

from __future__ import annotations

from typing import Any

from integration_tests.conftest import CliRun, catalog
from integration_tests.test_changes import (
    DAYS,
    DOCUMENT_STREAMS,
    END,
    FIRST_DAY,
    THREE,
    Seller,
    counts,
    emulator_for,
    latest_states,
    truth,
)
from integration_tests.test_one_pass import document_fetches, run_until
from sp_api_emulator import Dataset


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


def documents_of(killed: list[dict[str, Any]], resumed: CliRun) -> set[str]:
    """The invoices in invoice_documents of a killed sync's messages and of the sync resumed."""
    before = {
        m["record"]["data"]["invoiceId"]
        for m in killed
        if m["type"] == "RECORD" and m["record"]["stream"] == "invoice_documents"
    }
    return before | {r["invoiceId"] for r in resumed.records("invoice_documents")}


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
        emitted = documents_of(killed, resumed)
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
        documents = documents_of(killed, resumed)
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
