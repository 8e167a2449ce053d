"""Both document streams in one pass, through the CLI against the emulator: every recovery path
with both streams selected, and a sync of all five streams killed twice and resumed."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from integration_tests.conftest import (
    ALL_STREAMS,
    DOCUMENT_STREAMS,
    START,
    TIME_SCALE,
    catalog,
    parse_messages,
    state_of,
)
from integration_tests.test_documents import END_OF_WEEK, creations, truth
from sp_api_emulator import Dataset, EmulatorServer, ExportTiming


@pytest.fixture
def emulator(quick_emulator):
    """Exports that process in a tenth of a second: these tests are not about waiting."""
    return quick_emulator


@pytest.fixture
def config(emulator):
    """One-day windows over the first week: each export is one day, easy to name."""
    return emulator.connector_config(
        START, replication_end_date=END_OF_WEEK, documents_window_days=1, invoices_window_days=1
    )


def items_of(dataset, invoice_ids) -> set[tuple[str, int]]:
    """(invoiceId, itemNumber) of every item of these invoices, as the emulator wrote them."""
    return {
        (invoice_id, number)
        for invoice_id in invoice_ids
        for number in range(1, len(dataset.record(invoice_id).nfe.items) + 1)
    }


def document_fetches(emulator) -> Counter:
    """How often each document was handed out (getInvoicesDocument answered 200)."""
    return Counter(
        r.path.rsplit("/", 1)[-1]
        for r in emulator.stats.requests("getInvoicesDocument")
        if r.status == 200
    )


def assert_complete(
    run, dataset, streams=DOCUMENT_STREAMS, first: str = "2024-01-01", last: str = "2024-01-07"
) -> None:
    """Every invoice of first..last exactly once in each selected document stream, and the
    final states of those streams equal and past `last`."""
    assert run.returncode == 0, run.errors()
    expected = set(truth(dataset, first, last))
    if "invoice_documents" in streams:
        documents = Counter(r["invoiceId"] for r in run.records("invoice_documents"))
        assert set(documents) == expected and set(documents.values()) == {1}, documents
    if "invoice_items" in streams:
        items = Counter((r["invoiceId"], r["itemNumber"]) for r in run.records("invoice_items"))
        assert set(items) == items_of(dataset, expected) and set(items.values()) == {1}, items
    final = [run.states(stream)[-1] for stream in DOCUMENT_STREAMS if stream in streams]
    assert all(state == final[0] for state in final)
    assert final[0]["dateEnd"] == last and "exports" not in final[0]


def gone_state(streams) -> list[dict[str, Any]]:
    """The state of a killed sync whose export of 02 Amazon no longer knows."""
    gone = {
        "dateEnd": "2024-01-01",
        "resume_from": "2024-01-02",
        "exports": {"2024-01-02/2024-01-02": {"exportId": "gone-export", "documentsDone": []}},
        "windowDays": 1,
    }
    return [
        entry
        for stream in DOCUMENT_STREAMS
        if stream in streams
        for entry in state_of(stream, gone)
    ]


RECOVERIES = ["export_error", "export_gone", "expire_urls", "truncate_downloads", "drop_downloads"]


@pytest.mark.parametrize(
    ("fault", "others"),
    # Every recovery with both document streams, and two of them with the other streams too.
    [(fault, False) for fault in RECOVERIES] + [("export_error", True), ("drop_downloads", True)],
    ids=lambda value: {False: "documents_and_items", True: "all_streams"}.get(value, value),
)
def test_every_recovery_path_with_both_document_streams(
    cli, config, dataset, emulator, fault, others
):
    config["replication_end_date"] = "2024-01-04T00:00:00Z"  # days 01..03
    streams = ALL_STREAMS if others else DOCUMENT_STREAMS
    state = None
    if fault == "export_error":
        emulator.faults.fail_exports(1, date_start="2024-01-02")
    elif fault == "export_gone":  # a killed sync's export that Amazon no longer knows
        state = gone_state(streams)
    else:
        getattr(emulator.faults, fault)(2)
    run = cli.run("read", config, catalog=catalog(*streams), state=state)
    if fault == "export_gone":
        assert_complete(run, dataset, first="2024-01-02", last="2024-01-03")
        assert sorted(creations(emulator)) == ["2024-01-02", "2024-01-03"]  # 02 again, once
        return
    assert_complete(run, dataset, last="2024-01-03")
    days = creations(emulator)
    assert days.count("2024-01-02") == (2 if fault == "export_error" else 1)
    fetched = document_fetches(emulator)
    if fault == "export_error":  # the failed export had no document: nothing fetched twice
        assert set(fetched.values()) == {1}
    else:  # a broken download is fetched again with a fresh URL, once per fault (a URL can
        # also expire on its own under load: it lives 0.5 s of real time at this time scale)
        assert sum(fetched.values()) >= len(fetched) + 2


@pytest.mark.parametrize(
    "streams",
    [("invoice_documents",), ("invoice_items",), ALL_STREAMS],
    ids=["documents_only", "items_only", "all_streams"],
)
def test_every_recovery_path_at_once_with_any_selection(cli, config, dataset, emulator, streams):
    """The same recoveries in one sync of another selection: the export saved by a killed sync
    is gone, the next one ends in ERROR, a URL is issued expired, a ZIP comes half, a
    connection drops."""
    config["replication_end_date"] = "2024-01-05T00:00:00Z"  # days 01..04
    emulator.faults.fail_exports(1, date_start="2024-01-03")
    for fault in ("expire_urls", "truncate_downloads", "drop_downloads"):
        getattr(emulator.faults, fault)(1)
    run = cli.run("read", config, catalog=catalog(*streams), state=gone_state(streams))
    assert_complete(run, dataset, streams, first="2024-01-02", last="2024-01-04")
    assert sorted(creations(emulator)) == ["2024-01-02", "2024-01-03", "2024-01-03", "2024-01-04"]
    switches = emulator.faults.snapshot()  # each fault did fire
    assert [switches[f] for f in ("expire_urls", "truncate_downloads", "drop_downloads")] == [0] * 3
    fetched = document_fetches(emulator)
    assert sum(fetched.values()) >= len(fetched) + 3  # each broken download fetched again


def records_by_stream(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for message in messages:
        if message["type"] == "RECORD":
            found.setdefault(message["record"]["stream"], []).append(message["record"]["data"])
    return found


def last_states(messages: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict]:
    """The state Airbyte would hand the next attempt: each stream's last state seen so far."""
    states = {s["stream"]["stream_descriptor"]["name"]: s for s in before}
    for message in messages:
        if message["type"] == "STATE":
            states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
    return list(states.values())


def run_until(
    cli,
    config,
    state,
    stop: Callable[[dict[str, Any]], bool] = lambda message: False,
    event: Callable[[], bool] | None = None,
) -> list[dict[str, Any]]:
    """Read all streams and SIGKILL the process once `stop(message)` says so, or as soon as
    `event()` returns True (an emulator event, waited on in a thread)."""
    process = subprocess.Popen(
        cli.command("read", config, catalog(*ALL_STREAMS), state=state or None),
        stdout=subprocess.PIPE,
        text=True,
    )
    if event is not None:
        threading.Thread(target=lambda: event() and process.kill(), daemon=True).start()
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if any(stop(message) for message in parse_messages(line)):
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the sync ended before it could be killed"
    return parse_messages("".join(lines))


def test_all_streams_killed_in_flight_and_mid_document_lose_nothing_and_redo_nothing(
    cli, config, dataset, emulator
):
    # Exports take Amazon's time here (1 to 2 s of real time), so that the first kill lands
    # while the first export is in flight and no document has been asked for yet: at the
    # moment Amazon answers the second createInvoicesExport (the connector creates a few
    # windows ahead, one every 6 s of Amazon's time).
    emulator.exports.timing = ExportTiming()
    first = run_until(
        cli,
        config,
        None,
        event=lambda: emulator.stats.wait("createInvoicesExport", status=202, count=2, timeout=60),
    )
    assert not any(
        m["type"] == "RECORD" and m["record"]["stream"] in DOCUMENT_STREAMS for m in first
    )
    seen_states = [m for m in first if m["type"] == "STATE"]
    saved_ids = {
        export["exportId"]
        for m in seen_states
        for export in m["state"]["stream"]["stream_state"].get("exports", {}).values()
    }
    created_before_kill = emulator.export_requests()
    # The export created before the second was saved before that second was asked for.
    assert created_before_kill[0].export_id in saved_ids

    def mid_document(message: dict[str, Any]) -> bool:
        """The second run's first item: its document's records are being emitted."""
        return message["type"] == "RECORD" and message["record"]["stream"] == "invoice_items"

    resume = last_states([], [m["state"] for m in seen_states])
    second = run_until(cli, config, resume, mid_document)
    assert any(m["type"] == "RECORD" and m["record"]["stream"] == "invoice_items" for m in second)
    third_state = last_states(second, resume)
    exports_before_third = {export.export_id for export in emulator.export_requests()}
    third = cli.run("read", config, catalog=catalog(*ALL_STREAMS), state=third_state)
    assert third.returncode == 0, third.errors()
    union: dict[str, list[dict[str, Any]]] = {}
    for run in (first, second, third.messages):
        for stream, records in records_by_stream(run).items():
            union.setdefault(stream, []).extend(records)

    expected = set(truth(dataset))
    assert {r["id"] for r in union["invoices"]} == expected
    assert {r["invoiceId"] for r in union["invoice_documents"]} == expected
    assert {(r["invoiceId"], r["itemNumber"]) for r in union["invoice_items"]} == items_of(
        dataset, expected
    )
    # invoice_exports is read beside the documents: it lists every export created before the
    # last run started, and those the last run created before it listed them.
    created = {export.export_id for export in emulator.export_requests()}
    assert exports_before_third <= {r["exportId"] for r in union["invoice_exports"]} <= created
    assert {(r["attribute"], r["value"]) for r in union["invoice_attributes"]} == {
        (key.removesuffix("Options"), option["value"])
        for key, options in dataset.attributes.items()
        for option in options
    }
    # No export was created twice for a window whose export was saved: only one whose creation
    # was answered as the first run was killed may have been lost with it. No document fetched
    # twice but the one that was in flight when the second run was killed.
    days = creations(emulator)
    twice = {day for day in days if days.count(day) > 1}
    lost = {e.query["dateStart"] for e in created_before_kill if e.export_id not in saved_ids}
    assert twice <= lost and len(lost) <= 1, f"exports created twice: {days}, lost: {lost}"
    fetched = document_fetches(emulator)
    assert sum(fetched.values()) - len(fetched) <= 1, fetched
    # The final states of both document streams agree and say every day was read.
    final = {stream: third.states(stream)[-1] for stream in DOCUMENT_STREAMS}
    assert final["invoice_documents"] == final["invoice_items"]
    assert final["invoice_items"]["dateEnd"] == "2024-01-07"


def test_a_quiet_seller_needs_few_documents_and_windows_learn_amazons_longest_range(cli):
    """60 days of 2 invoices, Amazon taking 10 days at most: the plan wants one window for the
    59 days after the first; refusals search down to the 10 days Amazon takes (each refused
    length asked once), and a later sync keeps them without asking again."""
    quiet = Dataset.generate(seed=3, start=date(2024, 1, 1), days=60, invoices_per_day=2)
    with EmulatorServer(
        quiet, time_scale=TIME_SCALE, max_export_days=10, export_processing_seconds=(5, 10)
    ) as server:
        config = server.connector_config(START, replication_end_date="2024-03-01T00:00:00Z")
        run = cli.run("read", config, catalog=catalog(*DOCUMENT_STREAMS))
        assert run.returncode == 0, run.errors()
        windows = [(e.date_start, e.date_end) for e in server.export_requests()]
        refused = server.stats.count("createInvoicesExport", 400)
        documents = server.stats.count("getInvoicesDocument", 200)
        # The next sync, 40 days later, keeps the range Amazon took: no refusal to learn again.
        final = {stream: run.states(stream)[-1] for stream in DOCUMENT_STREAMS}
        assert final["invoice_documents"] == final["invoice_items"]
        assert final["invoice_items"]["longestRangeDays"] == 10
        config["replication_end_date"] = "2024-04-10T00:00:00Z"
        state = [e for stream, value in final.items() for e in state_of(stream, value)]
        later = cli.run("read", config, catalog=catalog(*DOCUMENT_STREAMS), state=state)
        assert later.returncode == 0, later.errors()
        assert server.stats.count("createInvoicesExport", 400) == refused
        later_sizes = [(e.date_end - e.date_start).days + 1 for e in server.export_requests()]
        assert max(later_sizes[len(windows) :]) == 10
        assert "Export windows span at most 10 day(s): Amazon refused" in later.logs()
    expected = {i["id"] for i in quiet.invoices("2024-01-01T00:00:00", "2024-02-29T23:59:59.999")}
    assert {r["invoiceId"] for r in run.records("invoice_documents")} == expected
    assert {r["invoiceId"] for r in run.records("invoice_items")} == expected
    sizes = [(last - first).days + 1 for first, last in windows]
    refusals = [
        int(m.split("-day window")[0].rsplit(" ", 1)[1])
        for m in run.logs().splitlines()
        if "-day window" in m and "Amazon refused the" in m
    ]
    # 1 day taken; 59, 30 and 15 refused; 8 taken; 11 refused; 9 and 10 taken: each length
    # asked once, halfway between the longest taken and the shortest refused, until they meet
    assert refusals == [59, 30, 15, 11] and refused == len(refusals)
    assert sizes[0] == 1 and max(sizes) == 10 and sum(sizes) == 60
    assert documents == len(windows) <= 8  # one-day windows: 60
