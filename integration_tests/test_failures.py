"""A sync that cannot go on: the failure type it reports decides whether Airbyte retries it, and
whatever it reports, the state it saved lets the next sync resume where it stopped."""

from __future__ import annotations

import threading

import pytest

from integration_tests.conftest import ALL_STREAMS, END, START, catalog, state_of
from integration_tests.test_cli import truth
from integration_tests.test_documents import truth as document_truth
from sp_api_emulator import EmulatorServer

WEEK_END = "2024-01-08T00:00:00Z"  # a week: enough windows to have exports in flight
STORM = 200  # 429s: more than every retry of one request (8), so the sync gives up


def storm_after(emulator, calls: int) -> threading.Thread:
    """Answer every getInvoices 429 once `calls` of them have succeeded (windows were read)."""

    def start() -> None:
        if emulator.stats.wait("getInvoices", 200, count=calls, timeout=60):
            emulator.faults.fail_next("getInvoices", 429, count=STORM)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    ("stop_sync_on_rate_limit", "failure_type"),
    [(False, "transient_error"), (True, "config_error")],
)
def test_a_lasting_429_storm_fails_with_its_failure_type_and_the_next_sync_resumes(
    cli, emulator, dataset, stop_sync_on_rate_limit, failure_type
):
    config = emulator.connector_config(
        START,
        replication_end_date=END,
        invoices_window_days=1,
        stop_sync_on_rate_limit=stop_sync_on_rate_limit,
    )
    # 50 ms a page: the read cannot finish its 21 windows before the storm is planned.
    emulator.faults.set_latency("getInvoices", 0.05)
    storm_after(emulator, calls=3)
    first = cli.run("read", config, catalog=catalog("invoices"))
    assert emulator.stats.count("getInvoices", 429) == 9  # the first try and 8 retries
    assert first.returncode != 0
    error, *summary = first.errors()
    assert error["message"].startswith(
        "Amazon kept answering 429 (too many requests) to getInvoices"
    )
    assert error["failure_type"] == failure_type
    assert error["stream_descriptor"]["name"] == "invoices"
    # The CDK ends with a summary, a config_error "because this combined error isn't actionable,
    # but rather the previously emitted individual errors" (abstract_source.py): ours, above.
    assert [e["message"].split(":")[0] for e in summary] == [
        "During the sync, the following streams did not sync successfully"
    ]
    saved = first.states("invoices")
    assert saved, "the windows read before the storm were checkpointed"

    emulator.faults.reset()  # the storm and the latency end
    before = emulator.stats.count("getInvoices", 200)
    second = cli.run(
        "read", config, catalog=catalog("invoices"), state=state_of("invoices", saved[-1])
    )
    assert second.returncode == 0, second.errors()
    read_again = emulator.stats.count("getInvoices", 200) - before
    union = {i["id"] for i in first.records("invoices")} | {
        i["id"] for i in second.records("invoices")
    }
    assert union == {i["id"] for i in truth(dataset, end=END)}  # nothing lost
    # The days already read were not read again: fewer windows than the whole range holds
    # (16 one-day windows, then the last 5 days slot by slot).
    assert read_again < 16 + 5 * 2


@pytest.fixture
def fast_emulator(dataset):
    """Five emulator minutes a real second: a document a fifth of a second, so the storm's eight
    retries take under two seconds; URLs live 10 emulator minutes (2 s, as quick_emulator's)."""
    with EmulatorServer(
        dataset, time_scale=300, export_queue_seconds=1, export_processing_seconds=(5, 10)
    ) as server:
        server.signer.ttl = 600
        yield server


@pytest.mark.parametrize(
    ("stop_sync_on_rate_limit", "failure_type"),
    [(False, "transient_error"), (True, "config_error")],
)
def test_with_every_stream_selected_a_document_429_storm_fails_the_document_streams_only(
    cli, fast_emulator, dataset, stop_sync_on_rate_limit, failure_type
):
    """As sellers configure it: the document pass fails with the storm's failure type, the
    streams read beside it complete, and the next sync reads the documents from the exports the
    failed one saved, without creating them again."""
    emulator = fast_emulator
    config = emulator.connector_config(
        START, replication_end_date=WEEK_END, stop_sync_on_rate_limit=stop_sync_on_rate_limit
    )
    emulator.faults.fail_next("getInvoicesDocument", 429, count=STORM)
    first = cli.run("read", config, catalog=catalog(*ALL_STREAMS))
    assert first.returncode != 0
    assert emulator.stats.count("getInvoicesDocument", 429) == 9  # the first try and 8 retries
    errors = first.errors()
    failed = {e["stream_descriptor"]["name"] for e in errors if e.get("stream_descriptor")}
    assert failed == {"invoice_documents", "invoice_items"}
    assert {e["failure_type"] for e in errors} == {failure_type}  # the summary's too
    assert sorted(i["id"] for i in first.records("invoices")) == sorted(
        i["id"] for i in truth(dataset, end=WEEK_END)
    )
    saved = {name: first.states(name)[-1] for name in ("invoice_documents", "invoice_items")}
    pending = {e["exportId"] for e in saved["invoice_documents"]["exports"].values()}
    assert pending and saved["invoice_items"]["exports"] == saved["invoice_documents"]["exports"]

    emulator.faults.reset()
    created = len(emulator.export_requests())
    state = [m for name, blob in saved.items() for m in state_of(name, blob)]
    second = cli.run("read", config, catalog=catalog(*ALL_STREAMS), state=state)
    assert second.returncode == 0, second.errors()
    documents = second.records("invoice_documents")
    assert {d["invoiceId"] for d in documents} == set(document_truth(dataset, last="2024-01-07"))
    assert pending <= {d["exportId"] for d in documents}  # the saved exports were read
    again = {e.query["dateStart"][:10] for e in emulator.export_requests()[created:]}
    saved_days = {key.split("/")[0] for key in saved["invoice_documents"]["exports"]}
    assert again.isdisjoint(saved_days)  # and no saved window's export was created again
