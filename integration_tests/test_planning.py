"""Export windows planned to the floor, through the CLI against the emulator, every stream
selected: documents fetched against ceil(N / M) on dense, year-like and busy sellers, under
every reading of the dates getInvoices and exports filter on, and a state 0.4.0 wrote read on.

The floor is the fewest documents Amazon can give N invoices in documents of M: no plan does
better, and each window's partly filled last document is what a plan pays above it.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from integration_tests.conftest import ALL_STREAMS, START, CliRun, catalog, state_of
from integration_tests.test_one_pass import DOCUMENT_STREAMS, document_fetches, items_of
from sp_api_emulator import Dataset, EmulatorServer, Readings, day_counts, spread
from sp_api_emulator.server import BARE_DATE_ZONES

SCALE = 240.0  # an emulator minute in a quarter of a second: a document every 0.25 s
FIRST_DAY = date(2024, 1, 1)
STATE_0_4_0 = Path(__file__).parent / "state_0_4_0.json"


def seller(counts: list[int], seed: int) -> Dataset:
    """A data set of exactly `counts[n]` invoices on day n."""
    return Dataset.generate(
        seed=seed, start=FIRST_DAY, days=len(counts), invoices_per_day=day_counts(counts, FIRST_DAY)
    )


def emulator_for(dataset: Dataset, per_document: int, **readings: Any) -> EmulatorServer:
    """Amazon's export times (a minute or two of its clock), documents of `per_document`."""
    server = EmulatorServer(
        dataset,
        time_scale=SCALE,
        max_invoices_per_document=per_document,
        readings=Readings(**readings),
    )
    server.signer.ttl = 600  # URLs never expire on their own on a busy machine
    return server


def read_everything(cli, server: EmulatorServer, days: int, **extra: Any) -> CliRun:
    end = (FIRST_DAY + timedelta(days=days)).isoformat() + "T00:00:00Z"
    config = server.connector_config(START, replication_end_date=end, **extra)
    run = cli.run("read", config, catalog=catalog(*ALL_STREAMS))
    assert run.returncode == 0, run.errors()
    return run


def assert_exact(
    run: CliRun, server: EmulatorServer, days: int, per_document: int | None = None
) -> set[str]:
    """Every stream holds what the emulator holds, each invoice once per document stream, and
    no request was refused for its rate; returns the invoices exported."""
    dataset, readings = server.dataset, server.readings
    last = FIRST_DAY + timedelta(days=days - 1)
    zone = BARE_DATE_ZONES[readings.bare_date_zone]
    exported = {
        i["id"]
        for i in dataset.export_invoices(
            FIRST_DAY, last, by=readings.invoice_filter_date, zone=zone
        )
    }
    documents = Counter(r["invoiceId"] for r in run.records("invoice_documents"))
    assert set(documents) == exported and set(documents.values()) == {1}
    items = Counter((r["invoiceId"], r["itemNumber"]) for r in run.records("invoice_items"))
    assert set(items) == items_of(dataset, exported) and set(items.values()) == {1}
    end = datetime.combine(last + timedelta(days=1), datetime.min.time())
    listed = dataset.invoices(
        datetime.combine(FIRST_DAY, datetime.min.time()), end, by=readings.invoice_filter_date
    )
    assert {r["id"] for r in run.records("invoices")} >= {i["id"] for i in listed}
    exports = {r["exportId"] for r in run.records("invoice_exports")}
    assert exports <= {e.export_id for e in server.exports.all()}
    assert run.records("invoice_attributes")
    assert server.stats.count(status=429) == 0
    final = [run.states(stream)[-1] for stream in DOCUMENT_STREAMS]
    assert final[0] == final[1] and final[0]["dateEnd"] == last.isoformat()
    expected = per_document or server.exports.max_invoices_per_document
    assert final[0]["invoicesPerDocument"] == expected
    return exported


def fetched(server: EmulatorServer) -> int:
    """Documents handed out, each counted once (a fresh URL for the same one is not another)."""
    return len(document_fetches(server))


def test_a_dense_seller_of_500_invoices_in_10_days_and_documents_of_40_needs_14(cli):
    """Every day over M: 13 documents at the least, one more for the day that learns M."""
    with emulator_for(seller([50] * 10, seed=1), per_document=40) as server:
        run = read_everything(cli, server, days=10)
        exported = assert_exact(run, server, days=10)
        assert len(exported) == 500
        assert fetched(server) <= 14


def test_a_year_of_20000_invoices_and_documents_of_500_needs_at_most_43(cli):
    with emulator_for(seller(spread(20_000, 365, seed=2), seed=2), per_document=500) as server:
        run = read_everything(cli, server, days=365)
        exported = assert_exact(run, server, days=365)
        assert len(exported) == 20_000  # the floor is 40
        assert fetched(server) <= 43
        forecast = [line for line in run.logs().splitlines() if "invoice(s) listed for" in line]
        planned = [line for line in forecast if "document(s) of up to 500 invoices" in line]
        assert len(planned) == 1 and len(forecast) <= 2  # and, once, before M was known


def busy(days: int, per_document: int, seed: int) -> list[int]:
    """Some 50 to 100 % of M every day."""
    rng = random.Random(seed)
    return [rng.randint(per_document // 2, per_document) for _ in range(days)]


@pytest.mark.parametrize(
    "readings",
    [
        {},
        {"invoice_filter_date": "creation"},
        {"bare_date_zone": "America/Sao_Paulo"},
    ],
    ids=["model", "getInvoices-and-exports-on-creation", "export-days-of-Brazil"],
)
def test_a_busy_seller_needs_at_most_5_percent_and_one_document_more_than_the_floor(cli, readings):
    """Days of 50 to 100 % of M, under every reading of which invoices a day holds: counts
    that are off (getInvoices' days are UTC's, the exports' Brazil's) cost documents, never
    an invoice."""
    days = 90
    with emulator_for(seller(busy(days, 100, seed=3), seed=3), 100, **readings) as server:
        run = read_everything(cli, server, days=days)
        exported = assert_exact(run, server, days=days)
        floor = math.ceil(len(exported) / 100)
        assert fetched(server) <= 1.05 * floor + 1, (fetched(server), floor)


@pytest.mark.parametrize("pagination", ["token_alone", "same_arguments"])
def test_with_invoices_not_selected_the_days_are_counted_and_no_invoice_emitted(cli, pagination):
    """The listing of its own pages through getInvoices under either nextToken rule of the
    model (350 invoices a week: two pages a window)."""
    counts = [50] * 10
    with emulator_for(seller(counts, seed=4), 40, pagination=pagination) as server:
        config = server.connector_config(START, replication_end_date="2024-01-11T00:00:00Z")
        run = cli.run("read", config, catalog=catalog(*DOCUMENT_STREAMS))
        assert run.returncode == 0, run.errors()
        assert run.records("invoices") == []
        # Counted by a listing of its own: the first 7 days in a window of two pages, then
        # the last 3 days slot by slot (what the next sync compares), and the first three hours
        # after them (Brazil's reading puts them in the last day's export).
        assert server.stats.count("getInvoices", 200) == 2 + 3 * 2 + 1
        documents = Counter(r["invoiceId"] for r in run.records("invoice_documents"))
        assert len(documents) == 500 and set(documents.values()) == {1}
        assert fetched(server) <= 14
        switched = "sending nextToken with the first page's arguments" in run.logs()
        assert switched == (pagination == "same_arguments")


def test_one_listing_serves_invoices_and_the_plan(cli):
    """With `invoices` selected, its own pages are counted: getInvoices is asked no more than
    the stream alone asks it, but for the three hours after the end date (the first slot of
    the next day, which Brazil's reading of the last day's export holds)."""
    counts = busy(30, 100, seed=5)
    with emulator_for(seller(counts, seed=5), per_document=100) as server:
        end = "2024-01-31T00:00:00Z"
        config = server.connector_config(START, replication_end_date=end)
        alone = cli.run("read", config, catalog=catalog("invoices"))
        assert alone.returncode == 0, alone.errors()
        pages_alone = server.stats.count("getInvoices")
        server.stats.reset()
        run = cli.run("read", config, catalog=catalog(*ALL_STREAMS))
        assert run.returncode == 0, run.errors()
        assert server.stats.count("getInvoices") == pages_alone + 1
        assert fetched(server) <= 1.05 * math.ceil(sum(counts) / 100) + 1


def exports_of_0_4_0(server: EmulatorServer) -> dict[str, str]:
    """Exports in the emulator for the windows the saved state names: placeholder -> id."""
    template = json.loads(STATE_0_4_0.read_text())
    ids: dict[str, str] = {}
    for key in sorted(template["invoice_documents"]["exports"]):
        first, last = (date.fromisoformat(day) for day in key.split("/"))
        invoices = [i["id"] for i in server.dataset.export_invoices(first, last)]
        export = server.exports.create(invoices, first, last)
        ids[f"<export {key}>"] = export.export_id
        ids[f"<document {key} #0>"] = export.documents[0].document_id
    return ids


def test_a_state_0_4_0_wrote_mid_backfill_is_resumed_without_exporting_a_saved_window_again(cli):
    """0.4.0, killed between the states of its two document streams (as captured from it):
    three exports in flight, one document read for invoice_documents only, and its windowDays.
    The saved exports are polled, not created again; the document read is not fetched again
    for a stream that has it; every other invoice lands once; the new state keeps M."""
    counts = [40] * 30
    with emulator_for(seller(counts, seed=6), per_document=100) as server:
        ids = exports_of_0_4_0(server)
        text = STATE_0_4_0.read_text()
        for placeholder, value in ids.items():
            text = text.replace(placeholder, value)
        saved = json.loads(text)
        state = [e for stream, blob in saved.items() for e in state_of(stream, blob)]
        config = server.connector_config(START, replication_end_date="2024-01-31T00:00:00Z")
        run = cli.run("read", config, catalog=catalog(*ALL_STREAMS), state=state)
        assert run.returncode == 0, run.errors()
        saved_windows = set(saved["invoice_documents"]["exports"])
        by_connector = [e for e in server.exports.all() if e.export_id not in ids.values()]
        created = {f"{e.date_start}/{e.date_end}" for e in by_connector}
        assert created and not created & saved_windows
        done = ids["<document 2024-01-02/2024-01-03 #0>"]
        export = next(e for e in server.exports.all() if e.documents[0].document_id == done)
        read_before = set(export.documents[0].invoice_ids)
        every = {i["id"] for i in server.dataset.export_invoices("2024-01-02", "2024-01-30")}
        documents = Counter(r["invoiceId"] for r in run.records("invoice_documents"))
        assert set(documents) == every - read_before and set(documents.values()) == {1}
        items = {(r["invoiceId"], r["itemNumber"]) for r in run.records("invoice_items")}
        assert items == items_of(server.dataset, every)
        final = [run.states(stream)[-1] for stream in DOCUMENT_STREAMS]
        assert final[0] == final[1] and final[0]["dateEnd"] == "2024-01-30"
        assert "windowDays" not in final[0] and final[0]["invoicesPerDocument"] == 100


def test_under_the_reading_of_one_xml_file_a_document_every_invoice_is_read_once(cli):
    """The model's example URL ends in .xml: each document one invoice, so M is 1 and no plan
    can do better than a document an invoice; the plan must not lose or repeat one."""
    with emulator_for(seller([8] * 5, seed=7), 40, document_body="xml") as server:
        run = read_everything(cli, server, days=5)
        exported = assert_exact(run, server, days=5, per_document=1)
        assert fetched(server) == len(exported) == 40
