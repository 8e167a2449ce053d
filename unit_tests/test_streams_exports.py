"""invoice_exports and invoice_documents over mocked HTTP: requests, state and downloads."""

from __future__ import annotations

import io
import logging
import re
import zipfile
import zlib
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from airbyte_cdk.logger import AirbyteLogFormatter
from airbyte_cdk.models import FailureType, SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.state_builder import StateBuilder

from conftest import validate_records
from source_sp_invoices import SourceSpInvoices
from source_sp_invoices.export_pipeline import pipeline as exports
from sp_api_emulator import Dataset, Invoice, render_nfe
from unit_tests.conftest import API_URL

S3 = "https://invoices-bucket.s3.amazonaws.com"
NFE = "http://www.portalfiscal.inf.br/nfe"


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    """Retries do not sleep, and the pipeline's clock jumps instead of waiting."""
    fake_time = [0.0]
    monkeypatch.setattr(exports.SystemClock, "now", lambda self: fake_time[0])
    monkeypatch.setattr(
        exports.SystemClock,
        "sleep",
        lambda self, seconds: fake_time.__setitem__(0, fake_time[0] + seconds),
    )


def catalog(stream: str, mode: SyncMode = SyncMode.incremental):
    return CatalogBuilder().with_stream(stream, mode).build()


def records_of(output, stream: str) -> list[dict[str, Any]]:
    data = [m.record.data for m in output.records if m.record.stream == stream]
    validate_records(stream, data)
    return data


SLOT_KEYS = (
    "delivered",
    "pending",
    "exportDayZone",
)  # change detection's records: test_changed_days.py


def states_of(output) -> list[dict[str, Any]]:
    """The states emitted, without change detection's slot records."""
    return [
        {k: v for k, v in m.state.stream.stream_state.__dict__.items() if k not in SLOT_KEYS}
        for m in output.state_messages
    ]


# The NF-e files the mocked ZIPs hold: real emulator invoices, so that with parse_nfe on (the
# default) the records carry parsed columns. An entry's name is the mock's invoice id; its
# content is the NF-e of one of these invoices, fixed per name.
NFE_INVOICES = Dataset.generate(seed=7, start=date(2024, 1, 1), days=1, invoices_per_day=8)


def nfe_of(name: str) -> Invoice:
    """The emulator invoice whose NF-e the entry `<name>.xml` holds."""
    records = NFE_INVOICES.records()
    return records[zlib.crc32(name.encode()) % len(records)]


def xml_of(name: str) -> str:
    """The text of the entry `<name>.xml`: an NF-e 4.00 nfeProc in UTF-8, non-ASCII names too."""
    return render_nfe(nfe_of(name)).decode("utf-8")


def not_an_nfe(name: str) -> str:
    """Well-formed XML that is not an NF-e: its nfeProc holds no NFe."""
    return f'<?xml version="1.0"?><nfeProc>{name} ç</nfeProc>'


def zip_of(
    names: list[str], not_nfe: frozenset[str] = frozenset(), given: dict[str, str] | None = None
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            text = not_an_nfe(name) if name in not_nfe else xml_of(name)
            archive.writestr(f"{name}.xml", (given or {}).get(name, text))
    return buffer.getvalue()


def cancellation_of(name: str) -> str:
    """A registered cancellation event (procEventoNFe) of the NF-e of entry `<name>.xml`."""
    key = nfe_of(name).nfe.access_key
    return (
        f'<procEventoNFe xmlns="{NFE}" versao="1.00"><evento versao="1.00">'
        f'<infEvento Id="ID110111{key}01"><chNFe>{key}</chNFe>'
        "<dhEvento>2024-01-01T18:00:00-03:00</dhEvento><tpEvento>110111</tpEvento>"
        '<nSeqEvento>1</nSeqEvento><detEvento versao="1.00"><descEvento>Cancelamento</descEvento>'
        "<nProt>135240000000001</nProt><xJust>Pedido cancelado pelo cliente</xJust></detEvento>"
        '</infEvento></evento><retEvento versao="1.00"><infEvento><cStat>135</cStat>'
        "<xMotivo>Evento registrado e vinculado a NF-e</xMotivo><nProt>135240000000002</nProt>"
        "</infEvento></retEvento></procEventoNFe>"
    )


def assert_parsed(record: dict[str, Any]) -> None:
    """An invoice_documents record holds the raw XML of its entry and its NF-e columns."""
    invoice = nfe_of(record["invoiceId"])
    assert record["xml"] == xml_of(record["invoiceId"])
    assert record.get("nfeParseError") is None
    assert record["accessKey"] == invoice.nfe.access_key
    assert record["number"] == str(invoice.nfe.number)
    assert record["issuerName"] == invoice.nfe.issuer.name
    assert record["recipientName"] == invoice.nfe.recipient.name
    assert Decimal(str(record["totalInvoice"])) == invoice.nfe.totals.invoice_total
    assert record["protocolStatusCode"] == invoice.protocol.status_code


class Amazon:
    """Mocks of the export operations: one export per window, DONE at the second poll."""

    def __init__(self, requests_mock, days: list[str], documents_per_export: int = 1) -> None:
        self.mock = requests_mock
        self.days = days
        self.exports: dict[str, dict[str, Any]] = {}
        self.documents: dict[str, list[str]] = {}
        self.per_export = documents_per_export
        self.not_nfe: frozenset[str] = frozenset()  # invoice ids whose entry is not an NF-e
        self.given: dict[str, str] = {}  # invoice id -> the text of its entry, when given
        fast = {"x-amzn-RateLimit-Limit": "1000"}  # so that the call-rate budget never waits
        self.create = requests_mock.post(
            f"{API_URL}/exports", status_code=202, json=self._create, headers=fast
        )
        self.poll = requests_mock.get(
            re.compile(f"{API_URL}/exports/E"), json=self._poll, headers=fast
        )
        self.document = requests_mock.get(
            re.compile(f"{API_URL}/documents/"), json=self._document, headers=fast
        )
        self.s3 = requests_mock.get(re.compile(f"{S3}/"), content=self._download)
        # getInvoices, which lists the slots change detection compares: no invoice (nothing
        # delivered is known either, so the days looked back at are exported again).
        self.listing = requests_mock.get(f"{API_URL}/invoices", json={"invoices": []}, headers=fast)

    def _create(self, request, context):
        export_id = f"E{len(self.exports) + 1}"
        body = request.json()
        self.exports[export_id] = {"body": body, "polls": 0}
        for n in range(self.per_export):
            self.documents[f"{export_id}-D{n}"] = [f"{body['dateStart']}-{n}-{i}" for i in range(2)]
        return {"exportId": export_id}

    def _poll(self, request, context):
        export_id = request.path.rsplit("/", 1)[-1].upper()
        export = self.exports[export_id]
        export["polls"] += 1
        if export["polls"] < 2:
            return {"export": {"exportId": export_id, "status": "PROCESSING"}}
        ids = sorted(d for d in self.documents if d.startswith(f"{export_id}-"))
        return {"export": {"exportId": export_id, "status": "DONE", "invoicesDocumentIds": ids}}

    def _document(self, request, context):
        document_id = request.path.rsplit("/", 1)[-1].upper()
        url = self.url_of(document_id)
        return {"invoicesDocument": {"invoicesDocumentId": document_id, "invoicesDocumentUrl": url}}

    @staticmethod
    def url_of(document_id: str) -> str:
        """The pre-signed URL getInvoicesDocument answers for a document."""
        return f"{S3}/{document_id}.zip?X-Amz-Signature=abc"

    def _download(self, request, context):
        document_id = urlsplit(request.url).path.strip("/").removesuffix(".zip").upper()
        return zip_of(self.documents[document_id], self.not_nfe, self.given)


def config_for(config: dict[str, Any], last_day: str) -> dict[str, Any]:
    """Whole days before `last_day`, one day per export."""
    return {**config, "replication_end_date": f"{last_day}T00:00:00Z", "documents_window_days": 1}


def test_documents_are_exported_downloaded_and_emitted_per_invoice(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [], documents_per_export=2)
    config = config_for(config, "2024-01-04")  # whole days 01, 02 and 03
    config.update(statuses=["AUTHORIZED"], invoice_type="SHIPMENT")
    output = read(SourceSpInvoices(), config, catalog("invoice_documents"))
    records = records_of(output, "invoice_documents")
    assert [r["invoiceId"] for r in records] == [
        f"2024-01-0{d}-{n}-{i}" for d in (1, 2, 3) for n in range(2) for i in range(2)
    ]
    first = records[0]
    assert first["exportId"] == "E1" and first["invoicesDocumentId"] == "E1-D0"
    assert first["fileName"] == "2024-01-01-0-0.xml"
    assert (first["dateStart"], first["dateEnd"]) == ("2024-01-01", "2024-01-01")
    for record in records:
        assert_parsed(record)
    bodies = [r.json() for r in amazon.create.request_history]
    assert bodies[0] == {
        "marketplaceId": "A2Q3Y263D00KWC",
        "dateStart": "2024-01-01",
        "dateEnd": "2024-01-01",
        "fileFormat": "XML",
        "statuses": ["AUTHORIZED"],
        "invoiceType": "SHIPMENT",
    }
    assert states_of(output)[-1] == {"dateEnd": "2024-01-03", "invoicesPerDocument": 2}


def test_the_download_carries_no_sp_api_or_lwa_header(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    read(SourceSpInvoices(), config_for(config, "2024-01-02"), catalog("invoice_documents"))
    assert amazon.document.last_request.headers["x-amz-access-token"]
    download = amazon.s3.last_request
    assert "x-amz-access-token" not in download.headers
    assert "Authorization" not in download.headers


def test_state_records_pending_exports_while_a_window_is_read(lwa, requests_mock, config):
    Amazon(requests_mock, [], documents_per_export=2)
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-03"), catalog("invoice_documents")
    )
    states = states_of(output)
    # creation of the export of 01, then of 02 (ahead), then each document of 01, then 01 done
    first = {"2024-01-01/2024-01-01": {"exportId": "E1", "documentsDone": []}}
    assert states[0] == {"resume_from": "2024-01-01", "exports": first}
    assert states[1] == {
        "resume_from": "2024-01-01",
        "exports": {**first, "2024-01-02/2024-01-02": {"exportId": "E2", "documentsDone": []}},
    }
    assert states[2]["exports"]["2024-01-01/2024-01-01"]["documentsDone"] == ["E1-D0"]
    assert {"dateEnd": "2024-01-01", "resume_from": "2024-01-02"}.items() <= states[4].items()
    assert states[-1] == {"dateEnd": "2024-01-02", "invoicesPerDocument": 2}


def test_a_resumed_sync_polls_the_saved_export_instead_of_creating_one(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    amazon.exports["E7"] = {"body": {"dateStart": "2024-01-02"}, "polls": 1}
    amazon.documents["E7-D0"] = ["saved-1", "saved-2"]
    saved = {
        "dateEnd": "2024-01-01",
        "resume_from": "2024-01-02",
        "exports": {"2024-01-02/2024-01-02": {"exportId": "E7", "documentsDone": []}},
    }
    state = StateBuilder().with_stream_state("invoice_documents", saved).build()
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-03"), catalog("invoice_documents"), state
    )
    records = records_of(output, "invoice_documents")
    assert [r["invoiceId"] for r in records] == ["saved-1", "saved-2"]
    for record in records:
        assert_parsed(record)
    assert amazon.create.call_count == 0


def test_an_incremental_sync_starts_after_the_cursor_minus_the_lookback(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    config.update(lookback_days=1)
    state = StateBuilder().with_stream_state("invoice_documents", {"dateEnd": "2024-01-10"}).build()
    read(SourceSpInvoices(), config_for(config, "2024-01-13"), catalog("invoice_documents"), state)
    assert [r.json()["dateStart"] for r in amazon.create.request_history] == [
        "2024-01-10",
        "2024-01-11",
        "2024-01-12",
    ]


# A pre-signed URL as S3 writes it, with fake credentials: the session token's "/", "+" and "="
# are percent-encoded in the URL, so a message could quote it in either form.
SIGNATURE = "5f0c2a9d51c7a3e0b4e8f1d2c6a7b9e0d3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEFAKE/unit+test+session+token=="
CREDENTIAL = "ASIAUNITTESTFAKEKEY0/20240102/us-east-1/s3/aws4_request"
PRESIGNED_QUERY = urlencode(
    {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": CREDENTIAL,
        "X-Amz-Date": "20240102T030405Z",
        "X-Amz-Expires": "30",
        "X-Amz-Security-Token": SESSION_TOKEN,
        "X-Amz-SignedHeaders": "host",
        "X-Amz-Signature": SIGNATURE,
    }
)


@pytest.fixture
def debug_log():
    """Every log line down to DEBUG, as `--debug` prints it (the CDK's read() helper keeps only
    INFO and above)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(AirbyteLogFormatter())
    logging.getLogger().addHandler(handler)
    yield buffer
    logging.getLogger().removeHandler(handler)


def test_a_pre_signed_url_never_reaches_the_debug_log(lwa, requests_mock, config, debug_log):
    amazon = Amazon(requests_mock, [])
    amazon.url_of = lambda document_id: f"{S3}/{document_id}.zip?{PRESIGNED_QUERY}"
    missing = "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>"
    s3 = requests_mock.get(
        re.compile(f"{S3}/"),
        [{"status_code": 404, "text": missing + "</Error>"}, {"content": zip_of(["a", "b"])}],
    )
    config = config_for(config, "2024-01-02")
    output = read(SourceSpInvoices(), config, catalog("invoice_documents"), debug=True)
    assert [r["invoiceId"] for r in records_of(output, "invoice_documents")] == ["a", "b"]
    assert SIGNATURE in s3.last_request.url  # downloaded with the URL as Amazon gave it
    printed = debug_log.getvalue() + "\n".join(
        repr(message) for message in [*output.logs, *output.trace_messages]
    )
    # The CDK printed getInvoicesDocument's answers at DEBUG, bodies and all...
    assert printed.count('"message": "Receiving response"') >= 2
    assert printed.count("invoicesDocumentUrl") >= 2
    assert "the download URL answered HTTP 404; asking for a fresh URL" in printed
    # ...with every credential of the URL masked, in every form, and the rest readable.
    for secret in [
        SIGNATURE,
        SESSION_TOKEN,
        quote(SESSION_TOKEN, safe=""),
        CREDENTIAL,
        quote(CREDENTIAL, safe=""),
        CREDENTIAL.split("/")[0],
        PRESIGNED_QUERY,
    ]:
        assert secret not in printed
    assert "X-Amz-Signature=****" in printed and "X-Amz-Date=20240102T030405Z" in printed


def test_an_expired_url_is_replaced_by_a_fresh_one(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    expired = "<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    requests_mock.get(
        re.compile(f"{S3}/"),
        [{"status_code": 403, "text": expired}, {"content": zip_of(["a", "b"])}],
    )
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-02"), catalog("invoice_documents")
    )
    records = records_of(output, "invoice_documents")
    assert [r["invoiceId"] for r in records] == ["a", "b"]
    for record in records:
        assert_parsed(record)
    assert amazon.document.call_count == 2


def test_a_download_cut_off_mid_body_is_fetched_again(lwa, requests_mock, config):
    Amazon(requests_mock, [])
    requests_mock.get(
        re.compile(f"{S3}/"),
        [{"exc": requests.exceptions.ChunkedEncodingError("cut")}, {"content": zip_of(["a"])}],
    )
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-02"), catalog("invoice_documents")
    )
    (record,) = records_of(output, "invoice_documents")
    assert record["invoiceId"] == "a"
    assert_parsed(record)  # the whole ZIP of the second download, not a piece of the first


def test_an_export_that_keeps_failing_fails_the_sync_naming_window_and_reason(
    lwa, requests_mock, config
):
    amazon = Amazon(requests_mock, [])
    requests_mock.get(
        re.compile(f"{API_URL}/exports/E"),
        json={"export": {"status": "ERROR", "errorMessage": "Export generation failed"}},
    )
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-02"), catalog("invoice_documents")
    )
    message = output.errors[0].trace.error.message
    assert "Amazon could not export the invoices of 2024-01-01..2024-01-01" in message
    assert "Export generation failed" in message
    assert amazon.create.call_count == 3
    assert not records_of(output, "invoice_documents")
    assert all("dateEnd" not in s for s in states_of(output))  # the cursor never passed it


def test_a_forgotten_export_is_created_again(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    requests_mock.get(
        f"{API_URL}/exports/E9", status_code=404, json={"errors": [{"code": "NotFound"}]}
    )
    saved = {"exports": {"2024-01-01/2024-01-01": {"exportId": "E9", "documentsDone": []}}}
    state = StateBuilder().with_stream_state("invoice_documents", saved).build()
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-02"), catalog("invoice_documents"), state
    )
    assert amazon.create.call_count == 1
    assert len(records_of(output, "invoice_documents")) == 2


def test_an_unreadable_saved_state_is_refused(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    state = StateBuilder().with_stream_state("invoice_documents", {"exports": ["E1"]}).build()
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-02"), catalog("invoice_documents"), state
    )
    assert "has exports=['E1'], which is not a map" in output.errors[0].trace.error.message
    assert amazon.create.call_count == 0


def test_invoice_exports_lists_every_page_and_keeps_the_latest_start(lwa, requests_mock, config):
    # The model gives no order for the listing (the emulator's is oldest first): the latest
    # start comes first here, and is still the cursor.
    first = {"exportId": "A", "status": "DONE", "generateExportStartedAt": "2024-01-06T10:00:00Z"}
    second = {"exportId": "B", "status": "REQUESTED"}
    third = {"exportId": "C", "status": "ERROR", "generateExportStartedAt": "2024-01-05T10:00:00Z"}
    route = requests_mock.get(
        f"{API_URL}/exports",
        [
            {"json": {"exports": [first, second], "nextToken": "n2"}},
            {"json": {"exports": [third]}},
        ],
    )
    output = read(SourceSpInvoices(), config, catalog("invoice_exports"))
    assert [r["exportId"] for r in records_of(output, "invoice_exports")] == ["A", "B", "C"]
    page_one, page_two = (parse_qs(urlsplit(r.url).query) for r in route.request_history)
    assert page_one["dateStart"] == ["2024-01-01T00:00:00Z"] and page_one["pageSize"] == ["100"]
    assert page_two == {"marketplaceId": ["A2Q3Y263D00KWC"], "nextToken": ["n2"]}
    assert states_of(output)[-1] == {"generateExportStartedAt": "2024-01-06T10:00:00Z"}


def test_invoice_exports_incremental_looks_back_for_status_changes(lwa, requests_mock, config):
    route = requests_mock.get(f"{API_URL}/exports", json={"exports": []})
    saved = {"generateExportStartedAt": "2024-01-10T12:00:00Z"}
    state = StateBuilder().with_stream_state("invoice_exports", saved).build()
    output = read(SourceSpInvoices(), config, catalog("invoice_exports"), state)
    assert parse_qs(urlsplit(route.last_request.url).query)["dateStart"] == ["2024-01-07T12:00:00Z"]
    assert states_of(output)[-1] == saved  # nothing newer: the cursor stays


def test_invoice_exports_asks_nothing_when_the_saved_cursor_lies_in_the_future(
    lwa, requests_mock, config
):
    """Amazon refuses a dateStart after dateEnd (400): a cursor past now means nothing to read."""
    route = requests_mock.get(f"{API_URL}/exports", json={"exports": []})
    saved = {"generateExportStartedAt": "2099-01-01T00:00:00Z"}
    state = StateBuilder().with_stream_state("invoice_exports", saved).build()
    output = read(SourceSpInvoices(), config, catalog("invoice_exports"), state)
    assert not output.errors
    assert route.call_count == 0
    assert records_of(output, "invoice_exports") == []


def test_an_unreadable_nfe_lands_with_its_raw_xml_and_the_reason(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    amazon.not_nfe = frozenset({"2024-01-01-0-0"})  # the other entry of the ZIP is an NF-e
    config = {**config_for(config, "2024-01-02"), "parse_nfe": True}
    output = read(SourceSpInvoices(), config, catalog("invoice_documents"))
    assert not output.errors
    bad, good = records_of(output, "invoice_documents")
    assert bad["invoiceId"] == "2024-01-01-0-0"
    assert bad["nfeParseError"] == "not an NF-e: nfeProc holds no NFe element"
    assert bad["xml"] == not_an_nfe("2024-01-01-0-0")
    assert "accessKey" not in bad  # null columns: the CDK leaves them out
    assert good["invoiceId"] == "2024-01-01-0-1"
    assert_parsed(good)  # one unreadable file does not spoil the rest of its document
    warnings = [m.log.message for m in output.logs if m.log.level.name == "WARN"]
    assert sum("2024-01-01-0-0.xml of export E1" in w for w in warnings) == 1
    assert not any("2024-01-01-0-1.xml" in w for w in warnings)


def test_an_nfe_event_lands_as_an_event_without_items(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    # The first entry of the ZIP cancels the NF-e of the second.
    amazon.given = {"2024-01-01-0-0": cancellation_of("2024-01-01-0-1")}
    config = {**config_for(config, "2024-01-02"), "parse_nfe": True}
    both = (
        CatalogBuilder()
        .with_stream("invoice_documents", SyncMode.incremental)
        .with_stream("invoice_items", SyncMode.incremental)
        .build()
    )
    output = read(SourceSpInvoices(), config, both)
    assert not output.errors
    event, invoice = records_of(output, "invoice_documents")
    assert event["xml"] == amazon.given["2024-01-01-0-0"]
    assert event.get("nfeParseError") is None
    assert event["documentType"] == "event" and invoice["documentType"] == "nfe"
    assert event["eventAccessKey"] == invoice["accessKey"]  # how an event joins its NF-e
    assert (event["eventType"], event["eventSequence"]) == ("110111", 1)
    assert event["eventJustification"] == "Pedido cancelado pelo cliente"
    assert (event["eventStatusCode"], event["eventProtocolNumber"]) == ("135", "135240000000002")
    assert "accessKey" not in event and "number" not in event  # an event's NF-e columns: null
    assert_parsed(invoice)
    items = records_of(output, "invoice_items")
    assert items and {item["invoiceId"] for item in items} == {"2024-01-01-0-1"}
    assert not [m for m in output.logs if m.log.level.name == "WARN"]


def test_an_unreadable_nfe_stops_the_sync_when_so_configured(lwa, requests_mock, config):
    amazon = Amazon(requests_mock, [])
    amazon.not_nfe = frozenset({"2024-01-01-0-0"})
    config = {**config_for(config, "2024-01-03"), "parse_nfe": True, "invalid_xml": "fail_sync"}
    output = read(
        SourceSpInvoices(), config, catalog("invoice_documents"), expecting_exception=True
    )
    assert records_of(output, "invoice_documents") == []
    message = output.errors[0].trace.error.message
    # A retry reads the same file: a config error, which Airbyte does not retry.
    assert output.errors[0].trace.error.failure_type == FailureType.config_error
    assert (
        "2024-01-01-0-0.xml of export E1 (document E1-D0, window 2024-01-01..2024-01-01)" in message
    )
    assert "nfeProc holds no NFe element" in message and "emit_with_error" in message
    # the state saved before the failure still says where to resume
    assert states_of(output)[-1]["resume_from"] == "2024-01-01"


def test_the_documents_stream_says_how_long_it_takes_and_estimates_its_rows(
    lwa, requests_mock, config
):
    amazon = Amazon(requests_mock, [])
    config = config_for(config, "2024-01-05")  # four whole days, two invoices each
    output = read(SourceSpInvoices(), config, catalog("invoice_documents"))
    logs = [m.log.message for m in output.logs]
    # what the plan foresaw and the summary reports, counted where it happened
    assert len(records_of(output, "invoice_documents")) == 8
    assert amazon.create.call_count == amazon.document.call_count == 4
    assert states_of(output)[-1] == {"dateEnd": "2024-01-04", "fullestDocument": 2}
    plan = next(m for m in logs if "days 2024-01-01 to 2024-01-04 (4 day(s))" in m)
    assert "in windows of one day: at least 4 document(s)" in plan
    assert "one document every 60 s, so this takes at least 4 min" in plan
    estimates = [m.trace.estimate for m in output.trace_messages if m.trace.type.name == "ESTIMATE"]
    assert [e.row_estimate for e in estimates] == [8, 8, 8, 8]  # 2 a day from the first day
    assert {e.name for e in estimates} == {"invoice_documents"}
    # the words are what a user reads: one summary, at the end
    assert sum("done: 4 day(s) in 4 window(s), 8 invoice(s), 8 record(s)" in m for m in logs) == 1


def test_documents_are_read_at_the_same_time_as_the_other_streams(lwa, requests_mock, config):
    import threading

    amazon = Amazon(requests_mock, [])
    export_created = threading.Event()
    original = amazon._create

    def create(request, context):
        export_created.set()
        return original(request, context)

    amazon.create = requests_mock.post(
        f"{API_URL}/exports", status_code=202, json=create, headers={"x-amzn-RateLimit-Limit": "9"}
    )

    pages = [0]

    def invoices(request, context):
        # Pages come until an export exists: read one after the other, none could exist
        # before invoices were done (requests_mock serialises its answers: no waiting here).
        pages[0] += 1
        if export_created.is_set() or pages[0] > 500:
            return {"invoices": []}
        return {"invoices": [], "nextToken": f"page-{pages[0]}"}

    requests_mock.get(
        f"{API_URL}/invoices", json=invoices, headers={"x-amzn-RateLimit-Limit": "1000"}
    )
    config = config_for(config, "2024-01-03")
    both = CatalogBuilder()
    for stream in ("invoices", "invoice_documents"):
        both.with_stream(stream, SyncMode.incremental)
    output = read(SourceSpInvoices(), config, both.build())
    assert not output.errors
    assert pages[0] <= 500, "invoice_documents did not run beside invoices"
    assert len(records_of(output, "invoice_documents")) == 4
    final = {
        s.state.stream.stream_descriptor.name: s.state.stream.stream_state
        for s in output.state_messages
    }
    assert set(final) == {"invoices", "invoice_documents"}


def date_times_only(amazon, requests_mock, refused: list[str], shape: str = "emulator"):
    """createInvoicesExport that takes only date-times, as the model's example body sends.

    shape "emulator": the emulator's 400 (the field named in the message); "model": the form of
    the model's sandbox 400, a generic message and the field named in `details` only; "period":
    a refusal of the form in words that also fit a range too long ("period").
    """
    original = amazon._create

    def create(request, context):
        body = request.json()
        if "T" not in body["dateStart"]:
            refused.append(body["dateStart"])
            context.status_code = 400
            if shape == "model":
                return {
                    "errors": [
                        {
                            "code": "400",
                            "message": "Request has missing or invalid parameters and cannot "
                            "be parsed.",
                            "details": "Invalid attribute(s): 'dateStart'.",
                        }
                    ]
                }
            if shape == "period":
                return {
                    "errors": [
                        {
                            "code": "InvalidInput",
                            "message": "Invalid dateStart: expected a date-time for the period",
                        }
                    ]
                }
            return {
                "errors": [
                    {
                        "code": "InvalidInput",
                        "message": f"Invalid value {body['dateStart']!r} for field dateStart: "
                        "expected a date-time.",
                    }
                ]
            }
        context.status_code = 202
        return original(request, context)

    amazon.create = requests_mock.post(
        f"{API_URL}/exports", json=create, headers={"x-amzn-RateLimit-Limit": "1000"}
    )


@pytest.mark.parametrize("shape", ["emulator", "model"])
def test_exports_switch_to_date_times_once_amazon_asks_for_them(lwa, requests_mock, config, shape):
    amazon = Amazon(requests_mock, [])
    refused: list[str] = []
    date_times_only(amazon, requests_mock, refused, shape)
    output = read(
        SourceSpInvoices(), config_for(config, "2024-01-04"), catalog("invoice_documents")
    )
    assert not output.errors
    bodies = [r.json() for r in amazon.create.request_history]
    assert refused == ["2024-01-01"]  # one refusal, then every export with date-times
    assert [(b["dateStart"], b["dateEnd"]) for b in bodies[1:]] == [
        (f"2024-01-0{d}T00:00:00", f"2024-01-0{d}T23:59:59") for d in (1, 2, 3)
    ]
    assert len(records_of(output, "invoice_documents")) == 6
    assert sum("sending date-times" in m.log.message for m in output.logs) == 1


def read_days_01_to_04(config, window_days: int = 4, **kwargs: Any):
    """invoice_documents over 01..04 with a learnt window of `window_days` and no ceiling: the
    first export asks for all four days when window_days is 4."""
    state = StateBuilder().with_stream_state("invoice_documents", {"windowDays": window_days})
    config = {**config, "replication_end_date": "2024-01-05T00:00:00Z"}
    return read(SourceSpInvoices(), config, catalog("invoice_documents"), state.build(), **kwargs)


def created_ranges(amazon) -> list[tuple[str, str]]:
    return [(r.json()["dateStart"], r.json()["dateEnd"]) for r in amazon.create.request_history]


@pytest.mark.parametrize("shape", ["emulator", "model", "period"])
def test_a_refused_date_form_on_a_window_of_days_switches_the_form_not_the_windows_length(
    lwa, requests_mock, config, shape
):
    amazon = Amazon(requests_mock, [])
    refused: list[str] = []
    date_times_only(amazon, requests_mock, refused, shape)
    # A learnt window of 4 days, no ceiling: the first export is refused on days 01..04.
    output = read_days_01_to_04(config)
    assert not output.errors
    assert created_ranges(amazon) == [
        ("2024-01-01", "2024-01-04"),
        ("2024-01-01T00:00:00", "2024-01-04T23:59:59"),
    ]
    logs = [m.log.message for m in output.logs]
    assert sum("sending date-times" in m for m in logs) == 1
    assert not [m for m in logs if "-day window" in m]  # never taken for a range too long
    # 0.4.0's windowDays sized the first window; the state now keeps what a document held.
    assert states_of(output)[-1] == {"dateEnd": "2024-01-04", "fullestDocument": 2}
    assert [r["invoiceId"] for r in records_of(output, "invoice_documents")] == [
        "2024-01-01T00:00:00-0-0",
        "2024-01-01T00:00:00-0-1",
    ]


def range_limited(
    amazon, requests_mock, longest: int, date_times: bool, names_fields: bool = True
) -> None:
    """createInvoicesExport that takes one form only and refuses a range longer than `longest`
    days, in the emulator's words (which name dateStart and dateEnd), or in words that name
    no field."""
    original = amazon._create

    def create(request, context):
        body = request.json()
        if ("T" in body["dateStart"]) != date_times:
            context.status_code = 400
            wanted = "a date-time" if date_times else "a date YYYY-MM-DD"
            return {
                "errors": [{"code": "InvalidInput", "message": f"dateStart: expected {wanted}"}]
            }
        first, last = (date.fromisoformat(body[k][:10]) for k in ("dateStart", "dateEnd"))
        if (last - first).days + 1 > longest:
            context.status_code = 400
            return {
                "errors": [
                    {
                        "code": "InvalidInput",
                        "message": f"Invalid date range: dateStart {first} to dateEnd {last} "
                        f"spans more than {longest} days."
                        if names_fields
                        else f"Invalid date range: more than {longest} days.",
                    }
                ]
            }
        context.status_code = 202
        return original(request, context)

    amazon.create = requests_mock.post(
        f"{API_URL}/exports", json=create, headers={"x-amzn-RateLimit-Limit": "1000"}
    )


@pytest.mark.parametrize("date_times", [False, True], ids=["dates", "date-times"])
def test_a_range_too_long_before_the_form_is_known_is_halved_in_the_form_amazon_takes(
    lwa, requests_mock, config, date_times
):
    amazon = Amazon(requests_mock, [])
    range_limited(amazon, requests_mock, longest=2, date_times=date_times)
    output = read_days_01_to_04(config)
    assert not output.errors
    both = [("2024-01-01", "2024-01-04"), ("2024-01-01T00:00:00", "2024-01-04T23:59:59")]
    halves = [("2024-01-01", "2024-01-02"), ("2024-01-03", "2024-01-04")]
    if date_times:
        halves = [(first + "T00:00:00", last + "T23:59:59") for first, last in halves]
    # Each form once, then the halves in the form that was refused for its range only.
    assert created_ranges(amazon) == both + halves
    logs = [m.log.message for m in output.logs]
    assert sum("sending date-times" in m for m in logs) == (1 if date_times else 0)
    assert sum("Amazon refused the 4-day window" in m for m in logs) == 1
    assert len(records_of(output, "invoice_documents")) == 4


def test_a_range_refusal_that_names_no_date_field_after_the_form_switch_keeps_the_new_form(
    lwa, requests_mock, config
):
    """The other form got past Amazon's check of the dates when its refusal is about something
    else: that form is kept and said, and the window halved in it."""
    amazon = Amazon(requests_mock, [])
    range_limited(amazon, requests_mock, longest=2, date_times=True, names_fields=False)
    output = read_days_01_to_04(config)
    assert not output.errors
    assert created_ranges(amazon) == [
        ("2024-01-01", "2024-01-04"),
        ("2024-01-01T00:00:00", "2024-01-04T23:59:59"),
        ("2024-01-01T00:00:00", "2024-01-02T23:59:59"),
        ("2024-01-03T00:00:00", "2024-01-04T23:59:59"),
    ]
    logs = [m.log.message for m in output.logs]
    assert sum("sending date-times (YYYY-MM-DDTHH:MM:SS) from now on" in m for m in logs) == 1
    assert sum("Amazon refused the 4-day window" in m for m in logs) == 1
    assert states_of(output)[-1]["longestRangeDays"] == 2


@pytest.mark.parametrize(
    "error",
    [
        {"code": "InvalidInput", "message": "Unknown series 9."},
        # The model's own sandbox answer to a createInvoicesExport that misses a parameter.
        {
            "code": "400",
            "message": "Request has missing or invalid parameters and cannot be parsed.",
            "details": "Missing required attribute(s): 'marketplaceId'.",
        },
    ],
    ids=["unknown_series", "model_sandbox_400"],
)
@pytest.mark.parametrize("window_days", [1, 4])
def test_an_export_refused_for_another_reason_fails_without_switching_or_halving(
    lwa, requests_mock, config, error, window_days
):
    """Only a 400 that speaks of a date range is taken for a range too long (the words are a
    guess at Amazon's sentence, which the model does not give): any other fails the sync."""
    amazon = Amazon(requests_mock, [])
    amazon.create = requests_mock.post(
        f"{API_URL}/exports", status_code=400, json={"errors": [error]}
    )
    output = read_days_01_to_04(config, window_days, expecting_exception=True)
    assert amazon.create.call_count == 1
    last = "2024-01-01" if window_days == 1 else "2024-01-04"
    assert output.errors[0].trace.error.message.startswith(
        f"Amazon rejected createInvoicesExport for 2024-01-01..{last}: {error['code']}: "
        f"{error['message']}"
    )
    assert not [m for m in output.logs if "-day window" in m.log.message]


@pytest.mark.parametrize(
    "failure",
    [
        {"status_code": 403, "text": "<Error><Code>AccessDenied</Code></Error>"},
        {"status_code": 400, "text": "<Error><CanonicalRequest>X-Amz-Signature=abc</Error>"},
        {"status_code": 404, "text": "<Error><Code>NoSuchKey</Code></Error>"},
        {"status_code": 500, "text": "<Error><Code>InternalError</Code></Error>"},
        {
            "exc": requests.exceptions.ConnectionError(
                "Max retries exceeded with url: /x?X-Amz-Signature=abc"
            )
        },
    ],
    ids=["403", "400", "404", "500", "connection"],
)
def test_no_message_holds_a_pre_signed_urls_query(lwa, requests_mock, config, failure):
    Amazon(requests_mock, [])
    requests_mock.get(re.compile(f"{S3}/"), [failure] * 3)
    output = read(
        SourceSpInvoices(),
        config_for(config, "2024-01-02"),
        catalog("invoice_documents"),
        expecting_exception=True,
    )
    assert output.errors  # three fresh URLs, all refused: the sync fails
    printed = "\n".join(str(message) for message in output._messages)
    assert "X-Amz-Signature" not in printed and "abc" not in printed
    assert "asking for a fresh URL" in printed
