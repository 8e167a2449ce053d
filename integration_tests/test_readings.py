"""The connector under every reading of the API model: each test runs the affected streams
through the CLI against the emulator with each value of the emulator's switch for that reading
(sp_api_emulator/readings.py). One test reads in-process instead, to set the connector's clock
(the day that has not ended in Brazil yet)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.state_builder import StateBuilder

from integration_tests.conftest import START, TIME_SCALE, catalog, state_of
from integration_tests.test_documents import END_OF_WEEK, truth
from integration_tests.test_one_pass import DOCUMENT_STREAMS, items_of
from source_sp_invoices import SourceSpInvoices
from source_sp_invoices.export_pipeline import document_pass
from sp_api_emulator import CHOICES, Dataset, EmulatorServer, ExportTiming, Readings


@pytest.fixture
def emulator(quick_emulator):
    """Exports that process in a tenth of a second: these tests are not about waiting."""
    return quick_emulator


def emulator_reading(dataset: Dataset, **readings: Any) -> EmulatorServer:
    """An emulator of its own for a data set, under these readings, exports taking Amazon's
    time (5 to 10 s of its clock)."""
    return EmulatorServer(
        dataset,
        time_scale=TIME_SCALE,
        export_processing_seconds=(5, 10),
        readings=Readings(**readings),
    )


def values(field: str) -> list[Any]:
    return list(CHOICES[field])


def read_with(emulator: EmulatorServer, **changes: Any) -> None:
    emulator.readings = replace(emulator.readings, **changes)


@pytest.fixture
def week(emulator) -> dict[str, Any]:
    """The first week in one-day export windows and seven-day invoice windows."""
    return emulator.connector_config(
        START, replication_end_date=END_OF_WEEK, documents_window_days=1
    )


def assert_documents_complete(run, dataset, first="2024-01-01", last="2024-01-07") -> None:
    assert run.returncode == 0, run.errors()
    expected = set(truth(dataset, first, last))
    assert {r["invoiceId"] for r in run.records("invoice_documents")} == expected
    assert {(r["invoiceId"], r["itemNumber"]) for r in run.records("invoice_items")} == items_of(
        dataset, expected
    )


@pytest.mark.parametrize("pagination", values("pagination"))
def test_every_page_of_invoices_and_exports_under_either_nextToken_rule(
    cli, emulator, dataset, pagination
):
    # Exports to list: more than a page of getInvoicesExports (100).
    for n in range(130):
        emulator.exports.create([], date(2024, 1, 1), date(2024, 1, 1), query={"n": n})
    read_with(emulator, pagination=pagination)
    config = emulator.connector_config(START, replication_end_date="2024-01-22T00:00:00Z")
    run = cli.run("read", config, catalog=catalog("invoices", "invoice_exports"))
    assert run.returncode == 0, run.errors()
    expected = {i["id"] for i in dataset.invoices("2024-01-01T00:00:00", "2024-01-21T23:59:59.999")}
    assert {r["id"] for r in run.records("invoices")} == expected
    assert len({r["exportId"] for r in run.records("invoice_exports")}) == 130
    switches = run.logs().count("from now on, as the other reading of the API model says")
    assert switches == (2 if pagination == "same_arguments" else 0)  # once per operation
    assert emulator.stats.count("getInvoices", 400) == (1 if pagination == "same_arguments" else 0)


@pytest.mark.parametrize("export_dates", values("export_dates"))
@pytest.mark.parametrize("windows", ["one day", "days"])
def test_exports_are_created_whichever_date_form_amazon_takes(
    cli, emulator, dataset, week, export_dates, windows
):
    read_with(emulator, export_dates=export_dates)
    state = None
    if windows == "days":  # no ceiling and a learnt size: the form is refused on four days
        del week["documents_window_days"]
        state = [s for name in DOCUMENT_STREAMS for s in state_of(name, {"windowDays": 4})]
    run = cli.run("read", week, catalog=catalog(*DOCUMENT_STREAMS), state=state)
    assert_documents_complete(run, dataset)
    bodies = [e.query for e in emulator.export_requests()]
    days = ["01", "02", "03", "04", "05", "06", "07"]
    spans = [("01", "04"), ("05", "07")] if windows == "days" else [(d, d) for d in days]
    refused = emulator.stats.count("createInvoicesExport", 400)
    if export_dates == "date_time":
        assert refused == 1 and run.logs().count("sending date-times") == 1
        expected = [(f"2024-01-{a}T00:00:00", f"2024-01-{b}T23:59:59") for a, b in spans]
    else:
        assert refused == 0
        expected = [(f"2024-01-{a}", f"2024-01-{b}") for a, b in spans]
    assert [(b["dateStart"], b["dateEnd"]) for b in bodies] == expected
    assert "-day window" not in run.logs()  # a refused form never halves a window


@pytest.mark.parametrize("export_statuses", values("export_statuses"))
@pytest.mark.parametrize("fault", ["none", "fail", "cancel"])
def test_exports_are_waited_on_and_created_again_under_either_set_of_statuses(
    cli, emulator, dataset, week, export_statuses, fault
):
    read_with(emulator, export_statuses=export_statuses)
    if fault == "fail":
        emulator.faults.fail_exports(1, date_start="2024-01-02")
    elif fault == "cancel":
        emulator.faults.cancel_exports(1, date_start="2024-01-03")
    week["replication_end_date"] = "2024-01-05T00:00:00Z"
    run = cli.run("read", week, catalog=catalog(*DOCUMENT_STREAMS))
    assert_documents_complete(run, dataset, last="2024-01-04")
    created = [e.query["dateStart"] for e in emulator.export_requests()]
    assert len(created) == 4 + (fault != "none")  # one export created again at most
    # Each export is polled once in its end state, so the other polls answered a waiting
    # status (REQUESTED/PROCESSING, or IN_QUEUE/IN_PROGRESS under "reports"), which the
    # connector waited on as one: no export was taken for stuck in a status it does not know.
    assert emulator.stats.count("getInvoicesExport", 200) > len(created)
    assert "does not know" not in run.logs()


# What invoice_exports shows of an export at each step of its life, under each reading: the
# model's ExportStatus enum, or the statuses of Amazon's use-case guide (errorMessage follows).
STATUS_SHOWN = {
    "model": {
        "queued": ("REQUESTED", ""),
        "processing": ("PROCESSING", ""),
        "done": ("DONE", ""),
        "failed": ("ERROR", "Export generation failed"),
        "cancelled": ("ERROR", "Export generation was cancelled"),
    },
    "reports": {
        "queued": ("IN_QUEUE", ""),
        "processing": ("IN_PROGRESS", ""),
        "done": ("DONE", ""),
        "failed": ("FATAL", "Export generation failed"),
        "cancelled": ("CANCELLED", ""),
    },
}


@pytest.mark.parametrize("export_statuses", values("export_statuses"))
def test_invoice_exports_emits_every_status_of_either_reading(cli, emulator, export_statuses):
    registry = emulator.exports

    def export(queue: float = 0, processing: float = 0, **plan: Any) -> str:
        """An export that waits and processes so long (emulator seconds) from now."""
        registry.timing = ExportTiming(queue_seconds=queue, processing_seconds=(processing,) * 2)
        return registry.create([], date(2024, 1, 1), date(2024, 1, 1), **plan).export_id

    ids = {
        "queued": export(queue=1e9),
        "processing": export(processing=1e9),
        "done": export(),
        "failed": export(error_message="Export generation failed"),
        "cancelled": export(cancelled=True),
    }
    read_with(emulator, export_statuses=export_statuses)
    run = cli.run("read", emulator.connector_config(START), catalog=catalog("invoice_exports"))
    assert run.returncode == 0, run.errors()
    records = run.records("invoice_exports")  # each checked against the stream's JSON schema
    shown = {r["exportId"]: (r["status"], r["errorMessage"]) for r in records}
    assert shown == {ids[step]: seen for step, seen in STATUS_SHOWN[export_statuses].items()}


@pytest.mark.parametrize("export_statuses", values("export_statuses"))
def test_a_status_no_reading_names_fails_naming_it_after_a_bounded_wait(
    cli, dataset, export_statuses
):
    # 90 polls at the applied rate: a faster clock (nothing is downloaded here) keeps it short.
    with EmulatorServer(
        dataset, time_scale=4 * TIME_SCALE, readings=Readings(export_statuses=export_statuses)
    ) as emulator:
        emulator.faults.odd_status("PAUSED", date_start="2024-01-01")
        config = emulator.connector_config(
            START, replication_end_date="2024-01-02T00:00:00Z", documents_window_days=1
        )
        run = cli.run("read", config, catalog=catalog("invoice_documents"))
        created = len(emulator.export_requests())
    assert run.returncode != 0
    message = run.errors()[0]["message"]
    assert "stayed in status 'PAUSED'" in message and "2024-01-01..2024-01-01" in message
    assert created == 1  # waited on, not created again


@pytest.mark.parametrize("document_body", values("document_body"))
def test_documents_are_read_whether_the_body_is_a_zip_or_one_xml_file(cli, document_body):
    # Under the xml reading each document is one invoice: a few a day keep this short.
    dataset = Dataset.generate(seed=4, start=date(2024, 1, 1), days=2, invoices_per_day=3)
    with emulator_reading(dataset, document_body=document_body) as emulator:
        config = emulator.connector_config(START, replication_end_date="2024-01-03T00:00:00Z")
        run = cli.run("read", config, catalog=catalog(*DOCUMENT_STREAMS))
        documents = emulator.stats.count("getInvoicesDocument", 200)
    assert_documents_complete(run, dataset, last="2024-01-02")
    warnings = run.logs().count("is one XML file, not a ZIP")
    assert warnings == (documents if document_body == "xml" else 0)
    assert documents == (6 if document_body == "xml" else 2)  # each read once, never retried
    ids = {r["invoicesDocumentId"] for r in run.records("invoice_documents")}
    assert len(ids) == documents


def test_a_whole_sync_without_the_rate_limit_header_keeps_the_documented_plans(cli, dataset):
    with emulator_reading(dataset, rate_limit_header=False) as emulator:
        config = emulator.connector_config(
            START, replication_end_date="2024-01-02T00:00:00Z", documents_window_days=1
        )
        streams = ("invoice_attributes", "invoices", "invoice_exports", *DOCUMENT_STREAMS)
        run = cli.run("read", config, catalog=catalog(*streams))
        assert_documents_complete(run, dataset, last="2024-01-01")
        assert {r["id"] for r in run.records("invoices")} == set(truth(dataset, last="2024-01-01"))
        assert "Amazon applies" not in run.logs()  # no rate learnt: the plans stay
        assert emulator.stats.count(status=429) == 0


def test_no_invoice_is_dropped_when_getInvoices_and_exports_filter_on_the_creation_time(cli):
    dataset = Dataset.generate(seed=8, start=date(2024, 1, 1), days=14, invoices_per_day=(5, 30))
    with emulator_reading(dataset, invoice_filter_date="creation") as emulator:
        config = emulator.connector_config(
            START, replication_end_date="2024-01-15T00:00:00Z", invoices_window_days=1
        )
        run = cli.run("read", config, catalog=catalog("invoices", *DOCUMENT_STREAMS))
        assert run.returncode == 0, run.errors()
        end = datetime(2024, 1, 15)
        created = {
            i["id"]: emulator.dataset.created_at(i["id"]).replace(tzinfo=None)
            for i in dataset.invoices("2023-12-01T00:00:00", "2024-02-01T00:00:00")
        }
        expected = {i for i, at in created.items() if datetime(2024, 1, 1) <= at < end}
        crossing = {
            i["id"]
            for i in dataset.invoices("2024-01-01T00:00:00", "2024-01-14T23:59:59.999")
            if i["id"] in expected and created[i["id"]].date().isoformat() != i["date"][:10]
        }
        assert crossing, "the data set has invoices created on another day than their date"
        assert {r["id"] for r in run.records("invoices")} == expected
        # createInvoicesExport filters on the creation time too: the document streams hold the
        # very invoices `invoices` emitted, as the emulator's own export query has them.
        exported = dataset.export_invoices("2024-01-01", "2024-01-14", by="creation")
        assert {i["id"] for i in exported} == expected
        documents = [r["invoiceId"] for r in run.records("invoice_documents")]
        assert len(documents) == len(set(documents)) and set(documents) == expected
        items = {(r["invoiceId"], r["itemNumber"]) for r in run.records("invoice_items")}
        assert items == items_of(dataset, expected)


def test_no_invoice_of_a_day_is_lost_when_amazon_reads_dates_in_brazils_time(cli):
    dataset = Dataset.generate(seed=9, start=date(2024, 1, 1), days=10, invoices_per_day=(5, 30))
    with emulator_reading(dataset, bare_date_zone="America/Sao_Paulo") as emulator:
        streams = catalog(*DOCUMENT_STREAMS)
        config = emulator.connector_config(
            "2024-01-02T00:00:00Z", replication_end_date="2024-01-05T00:00:00Z", lookback_days=0
        )
        first = cli.run("read", config, catalog=streams)
        assert first.returncode == 0, first.errors()
        config["replication_end_date"] = "2024-01-09T00:00:00Z"
        state = [s for name in DOCUMENT_STREAMS for s in state_of(name, first.states(name)[-1])]
        second = cli.run("read", config, catalog=streams, state=state)
        assert second.returncode == 0, second.errors()
    read = {r["invoiceId"] for run in (first, second) for r in run.records("invoice_documents")}
    # Brazil's days 2024-01-02 .. 2024-01-08: from 03:00 UTC on the 2nd to 03:00 on the 9th.
    low, high = datetime(2024, 1, 2, 3), datetime(2024, 1, 9, 3)
    brazil = {
        i["id"]
        for i in dataset.invoices("2024-01-02T00:00:00", "2024-01-09T23:59:59.999")
        if low <= datetime.fromisoformat(i["date"][:19]) < high
    }
    assert read == brazil  # the two syncs' days join without a gap


def brazil_days(dataset: Dataset, first: str, last: str) -> set[str]:
    """The invoices of Brazil's days first..last: from 03:00 UTC of the first to 03:00 UTC of
    the day after the last."""
    low = datetime.fromisoformat(f"{first}T03:00:00")
    high = datetime.fromisoformat(f"{last}T03:00:00") + timedelta(days=1)
    return {
        i["id"]
        for i in dataset.invoices(low - timedelta(days=1), high + timedelta(days=1))
        if low <= datetime.fromisoformat(i["date"][:19]) < high
    }


def document_catalog():
    builder = CatalogBuilder()
    for name in DOCUMENT_STREAMS:
        builder.with_stream(name, SyncMode.incremental)
    return builder.build()


def final_states(output) -> dict[str, dict[str, Any]]:
    return {
        m.state.stream.stream_descriptor.name: m.state.stream.stream_state.__dict__
        for m in output.state_messages
    }


NOT_ENDED_IN_BRAZIL = (
    "Exporting days up to 2024-01-02: 2024-01-03 has not ended in Brazil yet (Amazon may read "
    "export dates in Brazil's time); the next sync exports it."
)


def test_a_day_not_over_in_brazil_is_exported_by_the_next_sync_without_gap_or_duplicate(
    monkeypatch,
):
    """In-process, so that the connector's clock can be set: 01:30 UTC on the 4th is 22:30 of
    the 3rd in Brazil, so the 3rd waits; at 03:30 UTC it has ended there too."""
    dataset = Dataset.generate(seed=10, start=date(2024, 1, 1), days=4, invoices_per_day=(5, 15))
    with emulator_reading(dataset, bare_date_zone="America/Sao_Paulo") as emulator:
        config = emulator.connector_config(START, lookback_days=0)  # no end date: up to now
        monkeypatch.setattr(document_pass, "now", lambda: datetime(2024, 1, 4, 1, 30, tzinfo=UTC))
        first = read(SourceSpInvoices(), config, document_catalog())
        first_exports = [(e.query["dateStart"], e.query["dateEnd"]) for e in emulator.exports.all()]
        monkeypatch.setattr(document_pass, "now", lambda: datetime(2024, 1, 4, 3, 30, tzinfo=UTC))
        builder = StateBuilder()
        for name, blob in final_states(first).items():
            builder.with_stream_state(name, blob)
        second = read(SourceSpInvoices(), config, document_catalog(), builder.build())
        exports = [(e.query["dateStart"], e.query["dateEnd"]) for e in emulator.exports.all()]
    assert not first.errors and not second.errors
    first_logs = [m.log.message for m in first.logs]
    assert first_logs.count(NOT_ENDED_IN_BRAZIL) == 1
    assert not [m for m in (m.log.message for m in second.logs) if "has not ended" in m]
    # The first sync stops before the 3rd, which the second exports, and nothing else.
    assert max(last for _, last in first_exports) == "2024-01-02"
    assert exports[len(first_exports) :] == [("2024-01-03", "2024-01-03")]
    for name in DOCUMENT_STREAMS:
        assert final_states(first)[name]["dateEnd"] == "2024-01-02"
        assert final_states(second)[name]["dateEnd"] == "2024-01-03"
    read_ids = [
        r.record.data["invoiceId"]
        for run in (first, second)
        for r in run.records
        if r.record.stream == "invoice_documents"
    ]
    assert len(read_ids) == len(set(read_ids))  # no duplicate
    assert set(read_ids) == brazil_days(dataset, "2024-01-01", "2024-01-03")  # no gap
    items = {
        (r.record.data["invoiceId"], r.record.data["itemNumber"])
        for run in (first, second)
        for r in run.records
        if r.record.stream == "invoice_items"
    }
    assert items == items_of(dataset, set(read_ids))


@pytest.mark.parametrize("bare_date_zone", values("bare_date_zone"))
def test_an_end_date_within_a_day_gives_the_invoices_the_docs_say(cli, bare_date_zone):
    dataset = Dataset.generate(seed=12, start=date(2024, 1, 1), days=4, invoices_per_day=(10, 20))
    with emulator_reading(dataset, bare_date_zone=bare_date_zone) as emulator:
        config = emulator.connector_config(START, replication_end_date="2024-01-03T12:00:00Z")
        run = cli.run("read", config, catalog=catalog("invoices", *DOCUMENT_STREAMS))
    assert run.returncode == 0, run.errors()
    assert (
        "replication_end_date 2024-01-03T12:00:00Z falls within a day: the document streams "
        "export whole days, up to 2024-01-02 (to 03:00 UTC of the next day if Amazon reads "
        "export dates in Brazil's time); invoices reads up to the end date itself. The day "
        "2024-01-03 is exported by a sync whose end date lies after it."
    ) in run.logs().splitlines()
    invoices = {r["id"] for r in run.records("invoices")}
    documents = {r["invoiceId"] for r in run.records("invoice_documents")}
    # invoices: from the start date to the end date itself.
    assert invoices == {i["id"] for i in dataset.invoices(START, "2024-01-03T12:00:00Z")}
    # The document streams: whole days 1 and 2, UTC days or Brazil's (03:00 to 03:00 UTC).
    if bare_date_zone == "UTC":
        expected = set(truth(dataset, "2024-01-01", "2024-01-02"))
    else:
        expected = brazil_days(dataset, "2024-01-01", "2024-01-02")
        early = {i["id"] for i in dataset.invoices(START, "2024-01-01T02:59:59.999")}
        assert early and not early & documents  # Brazil's 31 December: before the start day
    assert documents == expected
    assert documents < invoices  # a mid-day end: the documents hold fewer, none beyond it
