"""A sync that cannot go on: the failure type it reports decides whether Airbyte retries it, and
whatever it reports, the state it saved lets the next sync resume where it stopped."""

from __future__ import annotations

import threading

import pytest

from integration_tests.conftest import END, START, catalog, state_of
from integration_tests.test_cli import truth

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
    assert read_again < 21  # and the days already read were not read again (21 one-day windows)
