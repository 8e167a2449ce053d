"""One pass for invoice_documents and invoice_items: each document fetched and parsed once,
both states after every document, statuses of every stream, and states of earlier versions."""

from __future__ import annotations

import io
import logging
import zipfile
from collections import Counter
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.state_builder import StateBuilder

from conftest import validate_records
from source_sp_invoices import SourceSpInvoices, nfe
from sp_api_emulator import Dataset, nfe_xml
from unit_tests.conftest import API_URL
from unit_tests.test_streams_exports import Amazon, config_for, no_waiting  # noqa: F401

DOCUMENT_STREAMS = ("invoice_documents", "invoice_items")
DATASET = Dataset.generate(seed=5, start=date(2024, 1, 1), days=6, invoices_per_day=(2, 4))


class NfeAmazon(Amazon):
    """The export mocks, with real NF-e files of a generated data set in the ZIPs."""

    def _create(self, request, context):
        answer = super()._create(request, context)
        export_id, day = answer["exportId"], request.json()["dateStart"]
        ids = [i["id"] for i in DATASET.invoices(f"{day}T00:00:00", f"{day}T23:59:59.999999")]
        for n in range(self.per_export):
            self.documents[f"{export_id}-D{n}"] = ids[n :: self.per_export]
        return answer

    def _download(self, request, context):
        document_id = request.url.rsplit("/", 1)[-1].split(".zip")[0].upper()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for invoice_id in self.documents[document_id]:
                archive.writestr(f"{invoice_id}.xml", nfe_xml.render(DATASET.record(invoice_id)))
        return buffer.getvalue()


def invoices_of(first: str, last: str) -> list[str]:
    return [i["id"] for i in DATASET.invoices(f"{first}T00:00:00", f"{last}T23:59:59.999999")]


def catalog_of(*streams: str, mode: SyncMode = SyncMode.incremental):
    builder = CatalogBuilder()
    for stream in streams:
        builder.with_stream(stream, mode)
    return builder.build()


def records_of(output, stream: str) -> list[dict[str, Any]]:
    data = [m.record.data for m in output.records if m.record.stream == stream]
    validate_records(stream, data)
    return data


def states_by_stream(output) -> dict[str, list[dict[str, Any]]]:
    states: dict[str, list[dict[str, Any]]] = {}
    for message in output.state_messages:
        stream = message.state.stream
        saved = stream.stream_state.__dict__
        # Without change detection's slot records (test_changed_days.py tests them).
        saved = {
            k: v for k, v in saved.items() if k not in ("delivered", "pending", "exportDayZone")
        }
        states.setdefault(stream.stream_descriptor.name, []).append(saved)
    return states


def statuses(output) -> list[tuple[str, str]]:
    return [
        (m.trace.stream_status.stream_descriptor.name, m.trace.stream_status.status.name)
        for m in output.trace_messages
        if m.trace.type.name == "STREAM_STATUS"
    ]


def refuse(requests_mock, path: str, message: str) -> None:
    """Amazon answers GET `path` with a 400 InvalidInput saying `message`."""
    requests_mock.get(
        f"{API_URL}/{path}",
        status_code=400,
        json={"errors": [{"code": "InvalidInput", "message": message}]},
    )


def read_failing(config, end: str, *streams: str):
    return read(
        SourceSpInvoices(), config_for(config, end), catalog_of(*streams), expecting_exception=True
    )


def errors_by_stream(output) -> set[tuple[str, str]]:
    """(stream, message) of every stream's error trace."""
    return {
        (e.trace.error.stream_descriptor.name, e.trace.error.message)
        for e in output.errors
        if e.trace.error.stream_descriptor
    }


@pytest.fixture
def parses(monkeypatch) -> Counter:
    """How often each invoice XML is parsed."""
    counts: Counter = Counter()
    original = nfe.NfeParser.parse

    def counting(self, xml):
        parsed = original(self, xml)
        counts[parsed.header["accessKey"]] += 1
        return parsed

    monkeypatch.setattr(nfe.NfeParser, "parse", counting)
    return counts


def test_both_streams_fetch_and_parse_each_document_once(lwa, requests_mock, config, parses):
    amazon = NfeAmazon(requests_mock, [], documents_per_export=2)
    config = config_for(config, "2024-01-04")  # whole days 01..03
    output = read(SourceSpInvoices(), config, catalog_of(*DOCUMENT_STREAMS))
    assert not output.errors
    expected = invoices_of("2024-01-01", "2024-01-03")
    documents = records_of(output, "invoice_documents")
    items = records_of(output, "invoice_items")
    assert sorted(r["invoiceId"] for r in documents) == sorted(expected)
    assert Counter(r["invoiceId"] for r in items) == {
        invoice_id: len(DATASET.record(invoice_id).nfe.items) for invoice_id in expected
    }
    for record in documents:  # each record holds its file and that file's NF-e columns
        invoice = DATASET.record(record["invoiceId"])
        assert record["xml"] == nfe_xml.render(invoice).decode("utf-8")
        assert record.get("nfeParseError") is None
        assert record["accessKey"] == invoice.nfe.access_key
        assert record["issuerName"] == invoice.nfe.issuer.name
    for item in items:
        model = DATASET.record(item["invoiceId"]).nfe.items[item["itemNumber"] - 1]
        assert (item["productCode"], item["ncm"]) == (model.product_code, model.ncm)
        assert Decimal(str(item["grossValue"])) == model.gross_value
    assert amazon.s3.call_count == len(amazon.documents) == 6  # two documents a day, once each
    assert amazon.create.call_count == 3
    assert set(parses.values()) == {1} and len(parses) == len(expected)
    # Every document's records of both streams come before the first state that counts it
    # read, and after the state that counts the document before it: emitted as it is read.
    document_of = {i: d for d, invoices in amazon.documents.items() for i in invoices}
    day_of = {d: DATASET.record(i[0]).date.date().isoformat() for d, i in amazon.documents.items()}
    positions: dict[str, list[int]] = {d: [] for d in amazon.documents}
    counted: dict[str, int] = {}
    for n, message in enumerate(output.records_and_state_messages):
        if message.record is not None:
            positions[document_of[message.record.data["invoiceId"]]].append(n)
            continue
        saved = message.state.stream.stream_state.__dict__
        done = {d for export in saved.get("exports", {}).values() for d in export["documentsDone"]}
        for document in amazon.documents:
            if document in done or day_of[document] <= saved.get("dateEnd", ""):
                counted.setdefault(document, n)
    order = sorted(amazon.documents, key=counted.__getitem__)
    for before, document in zip([None, *order], order, strict=False):
        assert max(positions[document]) < counted[document], document
        assert before is None or min(positions[document]) > counted[before], document
    states = states_by_stream(output)
    assert states["invoice_documents"] == states["invoice_items"]
    assert states["invoice_items"][-1] == {"dateEnd": "2024-01-03", "invoicesPerDocument": 2}
    # states come in pairs, one per stream, after each document and each export created
    names = [m.state.stream.stream_descriptor.name for m in output.state_messages]
    assert names == list(DOCUMENT_STREAMS) * (len(names) // 2)
    assert len(names) // 2 >= amazon.s3.call_count + amazon.create.call_count


@pytest.mark.parametrize("stream", DOCUMENT_STREAMS)
def test_each_document_stream_works_alone(lwa, requests_mock, config, stream, parses):
    amazon = NfeAmazon(requests_mock, [])
    output = read(SourceSpInvoices(), config_for(config, "2024-01-03"), catalog_of(stream))
    assert not output.errors
    ids = {r["invoiceId"] for r in records_of(output, stream)}
    assert ids == set(invoices_of("2024-01-01", "2024-01-02"))
    assert set(states_by_stream(output)) == {stream}
    assert amazon.s3.call_count == 2 and set(parses.values()) == {1}


def test_an_export_in_error_is_really_created_again_with_both_streams(lwa, requests_mock, config):
    amazon = NfeAmazon(requests_mock, [])
    original = amazon._poll

    def poll(request, context):
        answer = original(request, context)
        if answer["export"]["exportId"] == "E1" and answer["export"]["status"] == "DONE":
            return {"export": {"exportId": "E1", "status": "ERROR", "errorMessage": "boom"}}
        return answer

    amazon.poll = requests_mock.get(
        f"{API_URL}/exports/E1", json=poll, headers={"x-amzn-RateLimit-Limit": "1000"}
    )
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-03"), catalog_of(*DOCUMENT_STREAMS)
    )
    assert not output.errors
    first_days = [r.json()["dateStart"] for r in amazon.create.request_history]
    assert first_days.count("2024-01-01") == 2  # a new export, not E1 again
    documents = records_of(output, "invoice_documents")
    assert {r["exportId"] for r in documents if r["dateStart"] == "2024-01-01"} != {"E1"}
    assert {r["invoiceId"] for r in documents} == set(invoices_of("2024-01-01", "2024-01-02"))
    assert {r["invoiceId"] for r in records_of(output, "invoice_items")} == {
        r["invoiceId"] for r in documents
    }


def test_statuses_of_every_stream_and_a_failure_keeps_the_others_complete(
    lwa, requests_mock, config
):
    NfeAmazon(requests_mock, [])
    refuse(requests_mock, "documents/E1-D0", "no such document")
    requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    output = read_failing(config, "2024-01-03", "invoices", *DOCUMENT_STREAMS)
    seen = statuses(output)
    assert ("invoices", "COMPLETE") in seen
    for stream in DOCUMENT_STREAMS:
        assert [s for name, s in seen if name == stream] == ["STARTED", "INCOMPLETE"]
    rejected = (  # Amazon's words, and the request id it gave (none here)
        "Amazon rejected getInvoicesDocument: InvalidInput: no such document "
        "[HTTP 400, x-amzn-RequestId unknown]"
    )
    assert errors_by_stream(output) == {(stream, rejected) for stream in DOCUMENT_STREAMS}


def test_statuses_run_from_started_to_complete(lwa, requests_mock, config):
    NfeAmazon(requests_mock, [])
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-03"), catalog_of(*DOCUMENT_STREAMS)
    )
    for stream in DOCUMENT_STREAMS:
        assert [s for name, s in statuses(output) if name == stream] == [
            "STARTED",
            "RUNNING",
            "COMPLETE",
        ]


def test_a_failure_after_records_leaves_both_streams_incomplete_at_their_last_state(
    lwa, requests_mock, config
):
    NfeAmazon(requests_mock, [])
    # the export of 01 is read; the one of 02 and 03 is refused
    refuse(requests_mock, "documents/E2-D0", "no such document")
    output = read_failing(config, "2024-01-04", *DOCUMENT_STREAMS)
    seen = statuses(output)
    for stream in DOCUMENT_STREAMS:
        assert [s for name, s in seen if name == stream] == ["STARTED", "RUNNING", "INCOMPLETE"]
    assert {r["invoiceId"] for r in records_of(output, "invoice_documents")} == set(
        invoices_of("2024-01-01", "2024-01-01")
    )
    last = {stream: states[-1] for stream, states in states_by_stream(output).items()}
    assert last["invoice_documents"] == last["invoice_items"]
    assert last["invoice_items"]["dateEnd"] == "2024-01-01"  # the next sync starts at 02


def test_a_failing_invoices_stream_leaves_the_document_streams_complete(lwa, requests_mock, config):
    NfeAmazon(requests_mock, [])
    refuse(requests_mock, "invoices", "bad filter")
    output = read_failing(config, "2024-01-03", "invoices", *DOCUMENT_STREAMS)
    seen = statuses(output)
    assert [s for name, s in seen if name == "invoices"] == ["STARTED", "INCOMPLETE"]
    for stream in DOCUMENT_STREAMS:
        assert [s for name, s in seen if name == stream] == ["STARTED", "RUNNING", "COMPLETE"]
        final = states_by_stream(output)[stream][-1]
        assert final["dateEnd"] == "2024-01-02" and "exports" not in final
    assert {r["invoiceId"] for r in records_of(output, "invoice_documents")} == set(
        invoices_of("2024-01-01", "2024-01-02")
    )
    rejected = (
        "Amazon rejected getInvoices: InvalidInput: bad filter [HTTP 400, x-amzn-RequestId unknown]"
    )
    assert errors_by_stream(output) == {("invoices", rejected)}


def test_states_an_earlier_version_left_apart_are_merged(lwa, requests_mock, config, parses):
    """The version that read items after documents, killed mid-documents: documents has a
    cursor and an export in flight, items nothing. Items is backfilled; documents gets no
    record of the days it has, and its export in flight is polled, not created again."""
    amazon = NfeAmazon(requests_mock, [])
    amazon.exports["E9"] = {"body": {"dateStart": "2024-01-03"}, "polls": 1}
    day_3 = invoices_of("2024-01-03", "2024-01-03")
    amazon.documents["E9-D0"] = day_3
    documents_state = {
        "dateEnd": "2024-01-02",
        "resume_from": "2024-01-03",
        "exports": {"2024-01-03/2024-01-03": {"exportId": "E9", "documentsDone": []}},
        "windowDays": 1,
    }
    state = StateBuilder().with_stream_state("invoice_documents", documents_state).build()
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-05"), catalog_of(*DOCUMENT_STREAMS), state
    )
    assert not output.errors
    created = [r.json()["dateStart"] for r in amazon.create.request_history]
    assert created == ["2024-01-01", "2024-01-02", "2024-01-04"]  # 03 is E9, polled
    items = {r["invoiceId"] for r in records_of(output, "invoice_items")}
    assert items == set(invoices_of("2024-01-01", "2024-01-04"))
    documents = {r["invoiceId"] for r in records_of(output, "invoice_documents")}
    assert documents == set(invoices_of("2024-01-03", "2024-01-04"))
    states = states_by_stream(output)
    assert states["invoice_documents"][-1] == states["invoice_items"][-1]
    assert states["invoice_items"][-1] == {"dateEnd": "2024-01-04", "fullestDocument": 4}
    assert set(parses.values()) == {1}


@pytest.mark.parametrize(
    ("current", "last"),
    [
        ("2024-01-10T02:00:00+00:00", "2024-01-08"),  # 9th not over in Brazil (23:00 there)
        ("2024-01-10T03:00:00+00:00", "2024-01-09"),  # midnight in Brazil: the 9th is over
        ("2024-01-10T23:00:00+00:00", "2024-01-09"),
    ],
)
def test_a_day_is_exported_only_once_it_has_ended_in_utc_and_in_brazil(current, last, caplog):
    from datetime import datetime

    from source_sp_invoices.export_pipeline.document_pass import last_whole_day

    moment = datetime.fromisoformat(current)
    assert str(last_whole_day(None, moment, logging.getLogger("t"))) == last


def test_an_end_date_within_a_day_says_why_the_documents_stop_before_it(caplog):
    from datetime import UTC, datetime

    from source_sp_invoices.export_pipeline.document_pass import last_whole_day

    end = datetime(2024, 1, 5, 12, tzinfo=UTC)
    with caplog.at_level(logging.INFO):
        last = last_whole_day(end, datetime(2024, 2, 1, tzinfo=UTC), logging.getLogger("t"))
    assert str(last) == "2024-01-04"
    assert sum("falls within a day" in r.message for r in caplog.records) == 1


def test_a_document_is_skipped_only_when_every_stream_that_needs_it_has_it_from_that_export():
    from source_sp_invoices.export_pipeline.document_pass import _Output, merged_exports

    key = "2024-01-03/2024-01-03"
    documents = _Output(
        stream=None,  # type: ignore[arg-type]
        first=date(2024, 1, 3),
        saved={key: {"exportId": "E9", "documentsDone": ["D1", "D2"]}},
    )
    items = _Output(
        stream=None,  # type: ignore[arg-type]
        first=date(2024, 1, 3),
        saved={key: {"exportId": "E8", "documentsDone": ["D1"]}},  # another export's D1
    )
    assert merged_exports([documents, items]) == {key: {"exportId": "E9", "documentsDone": []}}
    items.saved = {key: {"exportId": "E9", "documentsDone": ["D2"]}}
    assert merged_exports([documents, items]) == {key: {"exportId": "E9", "documentsDone": ["D2"]}}
    items.first = date(2024, 1, 4)  # items no longer needs the window: documents decides
    assert merged_exports([documents, items])[key]["documentsDone"] == ["D1", "D2"]
