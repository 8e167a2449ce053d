"""The emulator's export side over real HTTP: exports, documents, pre-signed ZIPs, NF-e XML.

Time runs on a ManualClock (or a high time scale), so exports finish and URLs expire without
anyone sleeping; the whole file takes a few seconds.
"""

from __future__ import annotations

import io
import signal
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from sp_api_emulator import (
    MARKETPLACE_ID,
    Dataset,
    EmulatorServer,
    ManualClock,
    Readings,
    encoding_for,
    render_nfe,
)
from sp_api_emulator.__main__ import main, parse_args

PREFIX = "/tax/invoices/2024-06-19"
NS = {"nfe": "http://www.portalfiscal.inf.br/nfe"}
EPOCH = datetime(2024, 7, 20, 12, 0, tzinfo=UTC)
START = date(2024, 7, 1)
FAST = {
    "createInvoicesExport": 1000.0,
    "getInvoicesExports": 1000.0,
    "getInvoicesExport": 1000.0,
    "getInvoicesDocument": 1000.0,
}
TOKEN_WITH_FILTERS = {
    "errors": [
        {
            "code": "400",
            "message": "Invalid Request.",
            "details": "Specifying nextToken with any other parameters will cause the request "
            "to fail.",
        }
    ]
}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Six days of 20-60 invoices, shared by read-only tests."""
    return Dataset.generate(seed=21, start=START, days=6, invoices_per_day=(20, 60))


class Emulator:
    """A server on a manual clock plus a tiny client of its export API."""

    def __init__(self, dataset: Dataset, **options: Any) -> None:
        self.clock = ManualClock()
        options.setdefault("rate_overrides", FAST)
        options.setdefault("arrival_grace", 0)  # a manual clock has no scheduling jitter
        self.server = EmulatorServer(dataset, clock=self.clock, epoch=EPOCH, **options)
        self.session = requests.Session()

    def __enter__(self) -> Emulator:
        self.server.start()
        self.token = self.server.issue_token()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.stop()

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the SP-API, then let 2 emulator ms pass: buckets of burst 1 refill (at FAST)."""
        headers = {"x-amz-access-token": self.token, **kwargs.pop("headers", {})}
        url = self.server.url + PREFIX + path
        response = self.session.request(method, url, headers=headers, timeout=30, **kwargs)
        self.clock.advance(0.002 / self.server.time_scale)
        return response

    def create(self, **body: Any) -> requests.Response:
        return self.call("POST", "/exports", json={"marketplaceId": MARKETPLACE_ID, **body})

    def create_id(self, first: str, last: str, **filters: Any) -> str:
        response = self.create(dateStart=first, dateEnd=last, **filters)
        assert response.status_code == 202, response.text
        return str(response.json()["exportId"])

    def export(self, export_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/exports/{export_id}")
        assert response.status_code == 200, response.text
        return dict(response.json()["export"])

    def finish(self) -> None:
        """Let every export created so far finish (queue 5 s + at most 120 s)."""
        self.clock.advance(126 / self.server.time_scale)

    def url(self, document_id: str) -> str:
        response = self.call("GET", f"/documents/{document_id}")
        assert response.status_code == 200, response.text
        document = response.json()["invoicesDocument"]
        assert document["invoicesDocumentId"] == document_id
        return str(document["invoicesDocumentUrl"])

    def download(self, document_id: str) -> bytes:
        response = requests.get(self.url(document_id), timeout=30)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == "application/zip"
        assert int(response.headers["Content-Length"]) == len(response.content)
        return response.content

    def files(self, export_id: str) -> list[tuple[str, bytes]]:
        """Every (file name, content) of every document of a DONE export, in document order."""
        export = self.export(export_id)
        assert export["status"] == "DONE", export
        found = []
        for document_id in export["invoicesDocumentIds"]:
            with zipfile.ZipFile(io.BytesIO(self.download(document_id))) as archive:
                for info in archive.infolist():
                    assert info.compress_type == zipfile.ZIP_DEFLATED
                    found.append((info.filename, archive.read(info)))
        return found

    def listing(self, **params: Any) -> requests.Response:
        return self.call("GET", "/exports", params={"marketplaceId": MARKETPLACE_ID, **params})

    def control(self, changes: dict[str, Any]) -> dict[str, Any]:
        response = requests.post(self.server.url + "/_emulator/control", json=changes, timeout=10)
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def emulator(dataset: Dataset) -> Iterator[Emulator]:
    with Emulator(dataset, max_invoices_per_document=50) as running:
        yield running


def ids_of(files: list[tuple[str, bytes]]) -> list[str]:
    names = [name for name, _ in files]
    assert all(name.endswith(".xml") for name in names)
    return [name.removesuffix(".xml") for name in names]


def first_error(response: requests.Response) -> dict[str, str]:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return dict(errors[0])


def s3_error(response: requests.Response) -> dict[str, str]:
    assert response.headers["Content-Type"] == "application/xml"
    root = ET.fromstring(response.content)
    assert root.tag == "Error"
    return {child.tag: child.text or "" for child in root}


# --- life cycle and contents -------------------------------------------------------------------


def test_export_moves_requested_processing_done_with_timestamps(emulator: Emulator) -> None:
    created = emulator.create(dateStart="2024-07-02", dateEnd="2024-07-02", fileFormat="XML")
    assert created.status_code == 202
    assert created.headers["x-amzn-RateLimit-Limit"] == "1000.0"
    assert set(created.json()) == {"exportId"}
    export_id = created.json()["exportId"]
    requested = emulator.export(export_id)
    assert requested == {
        "errorMessage": "",
        "exportId": export_id,
        "invoicesDocumentIds": [],
        "status": "REQUESTED",
    }
    emulator.clock.advance(4.9)
    assert emulator.export(export_id)["status"] == "REQUESTED"
    emulator.clock.advance(0.1)
    processing = emulator.export(export_id)
    assert processing["status"] == "PROCESSING"
    assert processing["generateExportStartedAt"] == "2024-07-20T12:00:05.000Z"
    assert "generateExportFinishedAt" not in processing and not processing["invoicesDocumentIds"]
    emulator.clock.advance(59.9)
    assert emulator.export(export_id)["status"] == "PROCESSING"  # at least 60 s of processing
    emulator.finish()
    done = emulator.export(export_id)
    assert done["status"] == "DONE" and done["errorMessage"] == ""
    started = datetime.fromisoformat(done["generateExportStartedAt"])
    finished = datetime.fromisoformat(done["generateExportFinishedAt"])
    assert done["generateExportStartedAt"] == processing["generateExportStartedAt"]
    assert timedelta(seconds=60) <= finished - started <= timedelta(seconds=120)
    assert len(done["invoicesDocumentIds"]) == 1


def test_documents_split_and_hold_exactly_the_invoices_of_the_days(
    emulator: Emulator, dataset: Dataset
) -> None:
    export_id = emulator.create_id("2024-07-02", "2024-07-04")
    emulator.finish()
    export = emulator.export(export_id)
    truth = dataset.export_invoices("2024-07-02", "2024-07-04")
    assert len(truth) > 100
    assert len(export["invoicesDocumentIds"]) == -(-len(truth) // 50)
    sizes = []
    for document_id in export["invoicesDocumentIds"]:
        with zipfile.ZipFile(io.BytesIO(emulator.download(document_id))) as archive:
            sizes.append(len(archive.namelist()))
    assert sizes[:-1] == [50] * (len(sizes) - 1) and 0 < sizes[-1] <= 50
    files = emulator.files(export_id)
    assert ids_of(files) == [invoice["id"] for invoice in truth]
    days = {invoice["date"][:10] for invoice in truth}
    assert days == {"2024-07-02", "2024-07-03", "2024-07-04"}
    for name, content in files[:20]:
        assert content == dataset.nfe_xml(name.removesuffix(".xml"))


def test_export_filters_agree_with_the_truth(emulator: Emulator, dataset: Dataset) -> None:
    sample = next(i for i in dataset.export_invoices("2024-07-01", "2024-07-06") if
                  len(i["transactionIds"]) == 2)  # fmt: skip
    shipment = sample["transactionIds"][1]
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"statuses": ["CANCELED", "REJECTED"]}, {"statuses": ["CANCELED", "REJECTED"]}),
        ({"invoiceType": "SYMBOLIC_RETURN"}, {"invoice_type": "SYMBOLIC_RETURN"}),
        ({"transactionType": "CUSTOMER_RETURN"}, {"transaction_type": "CUSTOMER_RETURN"}),
        ({"series": "2"}, {"series": "2"}),
        (
            {"externalInvoiceId": sample["externalInvoiceId"], "series": sample["series"]},
            {"external_invoice_id": sample["externalInvoiceId"], "series": sample["series"]},
        ),
        ({"transactionIdentifier": shipment}, {"transaction_identifier": tuple(shipment.values())}),
    ]
    for body, keywords in cases:
        export_id = emulator.create_id("2024-07-01", "2024-07-06", **body)
        emulator.finish()
        truth = dataset.export_invoices("2024-07-01", "2024-07-06", **keywords)
        assert truth, body
        assert ids_of(emulator.files(export_id)) == [i["id"] for i in truth], body
        # the export and getInvoices select with the same code
        same = dataset.invoices(
            "2024-07-01T00:00:00Z", "2024-07-06T23:59:59.999Z", sort_order="ASC", **keywords
        )
        assert same == truth


def test_days_are_inclusive_utc_days() -> None:
    local = Dataset.generate(seed=5, start=START, days=3, invoices_per_day=2)
    inside = [
        local.add_invoice("2024-07-02T00:00:00.000Z")["id"],
        local.add_invoice("2024-07-02T23:59:59.999Z")["id"],
        local.add_invoice("2024-07-01T21:30:00-03:00")["id"],  # 2024-07-02 00:30 UTC
    ]
    outside = [
        local.add_invoice("2024-07-01T23:59:59.999Z")["id"],
        local.add_invoice("2024-07-03T00:00:00.000Z")["id"],
        local.add_invoice("2024-07-02T22:00:00-03:00")["id"],  # 2024-07-03 01:00 UTC
    ]
    with Emulator(local) as emulator:
        export_id = emulator.create_id("2024-07-02", "2024-07-02")
        emulator.finish()
        found = set(ids_of(emulator.files(export_id)))
        assert set(inside) <= found and found.isdisjoint(outside)
        assert found == {i["id"] for i in local.export_invoices("2024-07-02", "2024-07-02")}
        # without dates: yesterday and today on the emulator wall clock (2024-07-20 12:00 UTC)
        default_id = emulator.create(fileFormat="XML").json()["exportId"]
        created = emulator.server.exports.get(default_id)
        assert (created.date_start, created.date_end) == (date(2024, 7, 19), date(2024, 7, 20))


def test_export_without_invoices_ends_done_without_documents(emulator: Emulator) -> None:
    export_id = emulator.create_id("2023-01-01", "2023-01-31")
    emulator.finish()
    export = emulator.export(export_id)
    assert export["status"] == "DONE" and export["invoicesDocumentIds"] == []


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"marketplaceId": None}, "marketplaceId"),
        ({"marketplaceId": "ATVPDKIKX0DER"}, "marketplaceId"),
        ({"dateStart": "2024-07-01T00:00:00Z"}, "dateStart"),
        ({"dateEnd": "07/02/2024"}, "dateEnd"),
        ({"dateEnd": "2024-02-30"}, "dateEnd"),
        ({"dateStart": 20240701}, "dateStart"),
        ({"dateStart": "2024-07-03", "dateEnd": "2024-07-02"}, "dateEnd"),
        ({"fileFormat": "PDF"}, "fileFormat"),
        ({"statuses": []}, "statuses"),
        ({"statuses": ["AUTHORIZED", "LOST"]}, "statuses"),
        ({"invoiceType": "GIFT"}, "invoiceType"),
        ({"transactionType": "BARTER"}, "transactionType"),
        ({"series": ""}, "series"),
        ({"transactionIdentifier": {"name": "ORDER_ID", "id": "1"}}, "transactionIdentifier"),
        ({"transactionIdentifier": {"name": "SHIPMENT_ID"}}, "transactionIdentifier"),
        ({"sellerId": "A1"}, "sellerId"),
    ],
)
def test_bad_export_requests_are_400_naming_the_field(
    emulator: Emulator, body: dict[str, Any], named: str
) -> None:
    payload = {"marketplaceId": MARKETPLACE_ID, **body}
    response = emulator.call(
        "POST", "/exports", json={k: v for k, v in payload.items() if v is not None}
    )
    assert response.status_code == 400, response.text
    error = first_error(response)
    assert error["code"] == "InvalidInput" and named in error["message"]


def test_export_body_must_be_a_json_object(emulator: Emulator) -> None:
    for data in (b"not json", b"[1, 2]", b""):
        response = emulator.call(
            "POST", "/exports", data=data, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, data
    form = emulator.call("POST", "/exports", data={"marketplaceId": MARKETPLACE_ID})
    assert form.status_code == 415 and first_error(form)["code"] == "UnsupportedMediaType"


# --- NF-e XML --------------------------------------------------------------------------------


def _mod11(digits: str, weights: list[int]) -> int:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def valid_access_key(key: str) -> bool:
    weights = [(2, 3, 4, 5, 6, 7, 8, 9)[i % 8] for i in range(43)][::-1]
    return len(key) == 44 and key.isdigit() and int(key[43]) == _mod11(key[:43], weights)


def decimal_of(element: ET.Element, path: str) -> Decimal:
    found = element.find(path, NS)
    assert found is not None and found.text is not None, path
    return Decimal(found.text)


def text_of(element: ET.Element, path: str) -> str:
    found = element.find(path, NS)
    assert found is not None and found.text is not None, path
    return found.text


def check_nfe(content: bytes, invoice: dict[str, Any]) -> str:
    """Check one nfeProc file against NF-e rules and its API metadata; return all its text."""
    assert content.startswith(b'<?xml version="1.0" encoding="UTF-8"?><nfeProc')
    assert 5_000 <= len(content) <= 20_000
    root = ET.fromstring(content)
    assert root.tag == "{http://www.portalfiscal.inf.br/nfe}nfeProc"
    assert root.get("versao") == "4.00"
    info = root.find("nfe:NFe/nfe:infNFe", NS)
    assert info is not None and info.get("versao") == "4.00"
    key = (info.get("Id") or "").removeprefix("NFe")
    assert valid_access_key(key)
    assert text_of(root, "nfe:protNFe/nfe:infProt/nfe:chNFe") == key
    assert text_of(info, "nfe:ide/nfe:cDV") == key[-1]
    assert text_of(info, "nfe:ide/nfe:mod") == "55"
    assert text_of(info, "nfe:ide/nfe:nNF") == invoice["externalInvoiceId"]
    assert text_of(info, "nfe:ide/nfe:serie") == invoice["series"]
    issued = datetime.fromisoformat(text_of(info, "nfe:ide/nfe:dhEmi"))
    assert issued.utcoffset() == timedelta(hours=-3)
    api_date = datetime.fromisoformat(invoice["date"])
    assert issued == api_date.replace(microsecond=0)
    assert text_of(info, "nfe:emit/nfe:CNPJ") == key[6:20]
    assert (
        info.find("nfe:dest/nfe:CNPJ", NS) is not None
        or info.find("nfe:dest/nfe:CPF", NS) is not None
    )
    items = info.findall("nfe:det", NS)
    assert [item.get("nItem") for item in items] == [str(n) for n in range(1, len(items) + 1)]
    total = info.find("nfe:total/nfe:ICMSTot", NS)
    assert total is not None
    sums = dict.fromkeys(("vProd", "vDesc", "vFrete", "vICMS", "vPIS", "vCOFINS"), Decimal(0))
    for item in items:
        product = item.find("nfe:prod", NS)
        assert product is not None
        quantity, unit = decimal_of(product, "nfe:qCom"), decimal_of(product, "nfe:vUnCom")
        assert decimal_of(product, "nfe:vProd") == (quantity * unit).quantize(Decimal("0.01"))
        assert len(text_of(product, "nfe:qCom").split(".")[1]) == 4
        assert len(text_of(product, "nfe:vProd").split(".")[1]) == 2
        for field in ("vProd", "vDesc", "vFrete"):
            if product.find(f"nfe:{field}", NS) is not None:
                sums[field] += decimal_of(product, f"nfe:{field}")
        assert product.find("nfe:vDesc", NS) is None or decimal_of(product, "nfe:vDesc") > 0
        icms = item.find("nfe:imposto/nfe:ICMS", NS)
        assert icms is not None and len(icms) == 1
        group = icms[0]
        cst = text_of(group, "nfe:CST")
        expected_group = {"00": "ICMS00", "41": "ICMS40"}[cst]
        assert group.tag == f"{{{NS['nfe']}}}{expected_group}"
        if cst == "00":
            sums["vICMS"] += decimal_of(group, "nfe:vICMS")
        for tax in ("PIS", "COFINS"):
            found = item.find(f"nfe:imposto/nfe:{tax}", NS)
            assert found is not None and len(found) == 1
            if found[0].find(f"nfe:v{tax}", NS) is not None:
                sums[f"v{tax}"] += decimal_of(found[0], f"nfe:v{tax}")
        assert item.find("nfe:imposto/nfe:IPI", NS) is not None
    for field, value in sums.items():
        assert decimal_of(total, f"nfe:{field}") == value, field
    value = (
        decimal_of(total, "nfe:vProd")
        - decimal_of(total, "nfe:vDesc")
        + decimal_of(total, "nfe:vFrete")
        + decimal_of(total, "nfe:vSeg")
        + decimal_of(total, "nfe:vOutro")
        + decimal_of(total, "nfe:vIPI")
    )
    assert decimal_of(total, "nfe:vNF") == value
    payment = info.find("nfe:pag/nfe:detPag", NS)
    assert payment is not None
    if text_of(payment, "nfe:tPag") != "90":
        assert decimal_of(payment, "nfe:vPag") == value
    status = text_of(root, "nfe:protNFe/nfe:infProt/nfe:cStat")
    if invoice["status"] in ("AUTHORIZED", "CANCELED"):
        assert status == "100"
        assert len(text_of(root, "nfe:protNFe/nfe:infProt/nfe:nProt")) == 15
    else:
        assert status == invoice["errorCode"]
    return " ".join(root.itertext())


def test_nfe_files_are_well_formed_consistent_and_deterministic(dataset: Dataset) -> None:
    invoices = dataset.invoices()
    for invoice in invoices:
        content = dataset.nfe_xml(invoice["id"])
        check_nfe(content, invoice)
        assert dataset.nfe_xml(invoice["id"]) == content  # same invoice, same bytes
        # the parties' names and cities, accents and all, are the model's to the character
        nfe = dataset.record(invoice["id"]).nfe
        info = ET.fromstring(content).find("nfe:NFe/nfe:infNFe", NS)
        assert info is not None
        assert text_of(info, "nfe:emit/nfe:xNome") == nfe.issuer.name
        assert text_of(info, "nfe:emit/nfe:enderEmit/nfe:xMun") == nfe.issuer.address.city
        assert text_of(info, "nfe:dest/nfe:xNome") == nfe.recipient.name
        assert text_of(info, "nfe:dest/nfe:enderDest/nfe:xMun") == nfe.recipient.address.city
    names = {dataset.record(i["id"]).nfe.recipient.name for i in invoices}
    assert {name for name in names if not name.isascii()}, "no accented name was checked"
    escaped = [i for i in invoices if b"&amp;" in dataset.nfe_xml(i["id"])]
    assert escaped  # names such as "Silva & Souza Comércio..." are escaped, and parse back
    again = Dataset.generate(seed=21, start=START, days=6, invoices_per_day=(20, 60))
    assert all(again.nfe_xml(i["id"]) == dataset.nfe_xml(i["id"]) for i in invoices[:50])


def test_rendering_ten_thousand_invoices_is_fast(dataset: Dataset) -> None:
    records = dataset.records()
    began = time.perf_counter()
    rendered = 0
    while rendered < 10_000:
        for record in records:
            render_nfe(record)
        rendered += len(records)
    assert time.perf_counter() - began < 2.0


def test_encoding_mix_gives_latin1_and_bom_files_with_the_same_text(dataset: Dataset) -> None:
    with Emulator(dataset, encoding_mix=True) as emulator:
        export_id = emulator.create_id("2024-07-01", "2024-07-06")
        emulator.finish()
        files = emulator.files(export_id)
    seen = set()
    for name, content in files:
        invoice_id = name.removesuffix(".xml")
        plain = dataset.nfe_xml(invoice_id)
        if content.startswith(b"\xef\xbb\xbf"):
            kind, text = "bom", content.decode("utf-8-sig")
        elif content.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>'):
            kind, text = "latin1", content.decode("iso-8859-1")
            assert content != plain and b"\xc3" not in content  # no UTF-8 sequences
        else:
            kind, text = "utf8", content.decode("utf-8")
            assert content == plain
        assert (
            kind
            == {"utf-8": "utf8", "iso-8859-1": "latin1", "utf-8-sig": "bom"}[
                encoding_for(invoice_id)
            ]
        )
        seen.add(kind)
        body = text.split("?>", 1)[1]
        assert body == plain.decode("utf-8").split("?>", 1)[1]
        assert ET.tostring(ET.fromstring(content)) == ET.tostring(ET.fromstring(plain))
    assert seen == {"utf8", "latin1", "bom"}


def test_given_xml_files_are_served_byte_for_byte_as_the_first_invoices(dataset: Dataset) -> None:
    given = [b"\xef\xbb\xbf<a>\xc3\xa7</a>", b'<?xml version="1.0"?>\r\n<b/>', b"not xml"]
    first_day = [invoice["id"] for invoice in dataset.export_invoices("2024-07-01", "2024-07-01")]
    with Emulator(dataset, readings=Readings(document_body="zip")) as emulator:
        ids = emulator.server.serve_xml(iter(given))
        assert ids == first_day[:3]
        assert emulator.server.info()["xmlFiles"] == 3
        export_id = emulator.create_id("2024-07-01", "2024-07-01")
        emulator.finish()
        files = dict(emulator.files(export_id))
    assert [files[f"{invoice_id}.xml"] for invoice_id in ids] == given
    others = [invoice_id for invoice_id in first_day if invoice_id not in ids]
    assert others and all(files[f"{i}.xml"] == dataset.nfe_xml(i) for i in others)
    with Emulator(dataset, readings=Readings(document_body="xml"), xml_files={ids[2]: b"x"}) as xml:
        export_id = xml.create_id("2024-07-01", "2024-07-01")
        xml.finish()
        assert requests.get(xml.url(ids[2]), timeout=10).content == b"x"
        assert requests.get(xml.url(ids[1]), timeout=10).content == dataset.nfe_xml(ids[1])
    server = EmulatorServer(dataset)
    with pytest.raises(ValueError, match=f"{len(dataset) + 1} files but only {len(dataset)}"):
        server.serve_xml([b"<a/>"] * (len(dataset) + 1))
    assert server.xml_files == {}


def test_entry_names_name_the_zip_entries_as_given(dataset: Dataset) -> None:
    first_day = [invoice["id"] for invoice in dataset.export_invoices("2024-07-01", "2024-07-01")]
    hostile = {first_day[0]: "../x.xml", first_day[1]: "/etc/x.xml"}
    with Emulator(dataset, entry_names=hostile) as emulator:
        assert emulator.server.info()["entryNames"] == 2
        export_id = emulator.create_id("2024-07-01", "2024-07-01")
        emulator.finish()
        files = dict(emulator.files(export_id))
    assert files["../x.xml"] == dataset.nfe_xml(first_day[0])
    assert files["/etc/x.xml"] == dataset.nfe_xml(first_day[1])
    assert {f"{i}.xml" for i in first_day[2:]} == set(files) - {"../x.xml", "/etc/x.xml"}


def test_cli_xml_dir_takes_every_xml_file_in_path_order(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "events").mkdir()
    for name in ("b.xml", "a.XML", "events/E1.xml", "notes.txt"):
        (tmp_path / name).write_text("<x/>")
    args = parse_args(["--xml-dir", str(tmp_path)])
    assert [p.relative_to(tmp_path).as_posix() for p in args.xml_dir] == [
        "a.XML",
        "b.xml",
        "events/E1.xml",
    ]
    assert parse_args([]).xml_dir is None
    for bad in (tmp_path / "missing", tmp_path / "events" / "E1.xml", tmp_path / "events" / "x"):
        if bad.name == "x":
            bad.mkdir()
        with pytest.raises(SystemExit):
            parse_args(["--xml-dir", str(bad)])
    monkeypatch.setattr(signal, "signal", lambda *_: None)  # keep pytest's own handlers
    assert main(["--days", "1", "--invoices-per-day", "2", "--xml-dir", str(tmp_path)]) == 2
    assert "--xml-dir: 3 files but only 2 invoices" in capsys.readouterr().err


# --- pre-signed URLs and downloads ----------------------------------------------------------


def done_document(emulator: Emulator, first: str = "2024-07-02") -> str:
    export_id = emulator.create_id(first, first)
    emulator.finish()
    return str(emulator.export(export_id)["invoicesDocumentIds"][0])


def test_url_lives_thirty_scaled_seconds(dataset: Dataset) -> None:
    with Emulator(dataset, time_scale=10) as emulator:  # 30 emulator s = 3 real s
        document_id = done_document(emulator)
        first, second = emulator.url(document_id), emulator.url(document_id)
        assert first != second  # every call issues a fresh URL
        query = parse_qs(urlsplit(first).query)
        assert query["X-Amz-Expires"] == ["30"]
        # the wall clock runs at real speed: 12:00 + 12.6 real s (126 emulator s)
        assert query["X-Amz-Date"] == ["20240720T120012Z"]
        assert urlsplit(first).path == f"/_s3/documents/{document_id}.zip"
        emulator.clock.advance(2.99)
        assert requests.get(first, timeout=10).status_code == 200
        emulator.clock.advance(0.02)
        expired = requests.get(second, timeout=10)
        assert expired.status_code == 403
        error = s3_error(expired)
        assert (error["Code"], error["Message"]) == ("AccessDenied", "Request has expired")
        assert error["X-Amz-Expires"] == "30"
        assert requests.get(emulator.url(document_id), timeout=10).status_code == 200


def test_wall_clock_speed(dataset: Dataset) -> None:
    with Emulator(dataset, time_scale=10, scaled_wall_clock=True) as emulator:
        export_id = emulator.create_id("2024-07-02", "2024-07-02")
        emulator.clock.advance(0.5)  # 5 emulator seconds: PROCESSING starts at 12:00:05
        assert emulator.export(export_id)["generateExportStartedAt"] == "2024-07-20T12:00:05.000Z"
    with Emulator(dataset, time_scale=10) as emulator:
        export_id = emulator.create_id("2024-07-02", "2024-07-02")
        emulator.clock.advance(0.5)  # 0.5 real seconds: PROCESSING starts at 12:00:00.5
        assert emulator.export(export_id)["generateExportStartedAt"] == "2024-07-20T12:00:00.500Z"
    # on a real clock, the dates agree with the client's own clock whatever the time scale
    with EmulatorServer(dataset, time_scale=1000, rate_overrides=FAST) as server:
        headers = {"x-amz-access-token": server.issue_token()}
        created = requests.post(
            server.url + PREFIX + "/exports",
            json={"marketplaceId": MARKETPLACE_ID, "dateStart": "2024-07-02"},
            headers=headers,
            timeout=10,
        ).json()["exportId"]
        deadline = time.monotonic() + 30  # DONE within 125 emulator seconds: 0.125 s
        while server.exports.get(created).status(server.exports.now()) != "DONE":
            assert time.monotonic() < deadline, "the export never finished"
            time.sleep(0.01)
        now = datetime.now(UTC).isoformat()
        listed = requests.get(
            server.url + PREFIX + "/exports",
            params={"marketplaceId": MARKETPLACE_ID, "dateEnd": now},
            headers=headers,
            timeout=10,
        ).json()["exports"]
        assert [(e["exportId"], e["status"]) for e in listed] == [(created, "DONE")]
        finished = datetime.fromisoformat(listed[0]["generateExportFinishedAt"])
        assert finished <= datetime.fromisoformat(now)
        assert server.export_requests()[0].query == {
            "marketplaceId": MARKETPLACE_ID,
            "dateStart": "2024-07-02",
        }


def test_tampered_or_unsigned_urls_are_refused(emulator: Emulator) -> None:
    document_id = done_document(emulator)
    url = emulator.url(document_id)
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    for change in ({"X-Amz-Expires": "3000"}, {"X-Amz-Signature": "0" * 64}):
        response = requests.get(base + "?" + urlencode({**query, **change}), timeout=10)
        assert response.status_code == 403
        assert s3_error(response)["Code"] == "SignatureDoesNotMatch"
    other = done_document(emulator, "2024-07-03")
    moved = requests.get(url.replace(document_id, other), timeout=10)
    assert moved.status_code == 403 and s3_error(moved)["Code"] == "SignatureDoesNotMatch"
    unsigned = requests.get(base, timeout=10)
    assert unsigned.status_code == 403 and s3_error(unsigned)["Code"] == "AccessDenied"
    assert requests.get(emulator.url(document_id), timeout=10).status_code == 200


@pytest.mark.parametrize("header", ["x-amz-access-token", "Authorization"])
def test_download_refuses_sp_api_credentials(emulator: Emulator, header: str) -> None:
    url = emulator.url(done_document(emulator))
    response = requests.get(url, headers={header: "Bearer " + emulator.token}, timeout=10)
    assert response.status_code == 400
    error = s3_error(response)
    assert error["Code"] == "InvalidArgument" and error["ArgumentName"] == header.lower()
    good = requests.get(url, timeout=10)
    assert good.status_code == 200
    for answer in (response, good):
        assert "x-amzn-RequestId" not in answer.headers
        assert "x-amzn-RateLimit-Limit" not in answer.headers
        assert answer.headers["x-amz-request-id"]
    assert emulator.server.stats.count("download", 400) == 1
    assert emulator.server.stats.count("download", 200) == 1
    logged = emulator.server.stats.requests("download")[0]
    assert "X-Amz-Signature" not in logged.query and "X-Amz-Date" in logged.query


def test_get_invoices_document_is_one_call_per_scaled_minute(dataset: Dataset) -> None:
    fast = {k: v for k, v in FAST.items() if k != "getInvoicesDocument"}
    with Emulator(dataset, time_scale=60, rate_overrides=fast) as emulator:
        document_id = done_document(emulator)
        url = emulator.url(document_id)
        throttled = emulator.call("GET", f"/documents/{document_id}")
        assert throttled.status_code == 429
        assert first_error(throttled)["code"] == "QuotaExceeded"
        assert throttled.headers["x-amzn-RateLimit-Limit"] == "1.002"
        # downloads are not rate limited
        assert [requests.get(url, timeout=10).status_code for _ in range(3)] == [200] * 3
        # 58.2 emulator seconds: 0.97 of a token (this server judges arrivals exactly: a manual
        # clock has no jitter; test_emulator.py tests the arrival grace)
        emulator.clock.advance(0.97)
        assert emulator.call("GET", f"/documents/{document_id}").status_code == 429
        emulator.clock.advance(0.03)
        assert emulator.call("GET", f"/documents/{document_id}").status_code == 200


def test_unknown_export_and_document_are_404(emulator: Emulator) -> None:
    for path in ("/exports/no-such-export", "/documents/no-such-document"):
        response = emulator.call("GET", path)
        assert response.status_code == 404
        assert first_error(response)["code"] == "NotFound"
    export_id = emulator.create_id("2024-07-02", "2024-07-02")
    document_id = emulator.server.exports.get(export_id).documents[0].document_id
    assert emulator.call("GET", f"/documents/{document_id}").status_code == 404  # not DONE yet
    emulator.finish()
    assert emulator.call("GET", f"/documents/{document_id}").status_code == 200


def test_zip_cache_lives_in_a_directory_removed_on_stop(dataset: Dataset) -> None:
    with Emulator(dataset) as emulator:
        document_id = done_document(emulator)
        first = emulator.download(document_id)
        assert emulator.download(document_id) == first  # built once, served again
        directory = emulator.server.zips.directory
        assert directory is not None and (directory / f"{document_id}.zip").exists()
    assert not directory.exists()


# --- getInvoicesExports ------------------------------------------------------------------------


def test_exports_listing_pages_and_filters(emulator: Emulator) -> None:
    emulator.server.faults.fail_exports(2, date_start="2024-07-05")
    created = []
    for day in ("2024-07-01", "2024-07-02", "2024-07-05", "2024-07-03", "2024-07-05"):
        created.append(emulator.create_id(day, day))
        emulator.clock.advance(10)
    emulator.finish()
    created.append(emulator.create_id("2024-07-04", "2024-07-04"))  # still REQUESTED
    collected, token, calls = [], None, 0
    while True:
        params = {"nextToken": token} if token else {"pageSize": 2}
        response = emulator.listing(**params)
        assert response.status_code == 200, response.text
        body = response.json()
        calls += 1
        assert len(body["exports"]) <= 2
        collected += body["exports"]
        token = body.get("nextToken")
        if token is None:
            break
    assert [e["exportId"] for e in collected] == created and calls == 3
    assert collected[-1]["status"] == "REQUESTED"

    def listed(**params: Any) -> list[str]:
        response = emulator.listing(**params)
        assert response.status_code == 200, response.text
        return [e["exportId"] for e in response.json()["exports"]]

    assert listed(status="ERROR") == [created[2], created[4]]
    assert listed(status="DONE") == [created[0], created[1], created[3]]
    assert listed(status="REQUESTED") == [created[5]]
    assert listed(status="PROCESSING") == []
    # created at 12:00:00, :10, :20, :30, :40 (plus a few ms); bounds are inclusive
    window = {"dateStart": "2024-07-20T12:00:10Z", "dateEnd": "2024-07-20T12:00:30.5Z"}
    assert listed(**window) == created[1:4]
    assert listed(dateEnd="2024-07-20T11:59:59Z") == []
    # the default window is the last 30 days of the emulator wall clock
    emulator.clock.advance(31 * 86_400)
    emulator.token = emulator.server.issue_token()
    latest = emulator.create_id("2024-07-06", "2024-07-06")
    assert listed() == [latest]
    assert len(listed(dateStart="2024-07-01T00:00:00Z")) == 7


def test_exports_listing_rejects_token_with_filters_and_bad_parameters(
    emulator: Emulator,
) -> None:
    for _ in range(3):
        emulator.create_id("2024-07-02", "2024-07-02")
    token = emulator.listing(pageSize=1, status="REQUESTED").json()["nextToken"]
    assert emulator.listing(nextToken=token, pageSize=1).status_code == 200
    for extra in ({"status": "REQUESTED"}, {"dateStart": "2024-07-01T00:00:00Z"}):
        response = emulator.listing(nextToken=token, **extra)
        assert response.status_code == 400
        assert response.json() == TOKEN_WITH_FILTERS
    invoices_token = emulator.call(
        "GET",
        "/invoices",
        params={"marketplaceId": MARKETPLACE_ID, "pageSize": 1,
                "dateStart": "2024-07-01T00:00:00Z", "dateEnd": "2024-07-06T00:00:00Z"},
    ).json()["nextToken"]  # fmt: skip
    for params, named in (
        ({"nextToken": invoices_token}, "nextToken"),
        ({"pageSize": 101}, "pageSize"),
        ({"pageSize": 0}, "pageSize"),
        ({"status": "FINISHED"}, "status"),
        ({"dateStart": "2024-07-21T00:00:00Z", "dateEnd": "2024-07-20T00:00:00Z"}, "dateStart"),
        ({"marketplaceId": "ATVPDKIKX0DER"}, "marketplaceId"),
    ):
        response = emulator.listing(**params)
        assert response.status_code == 400, params
        assert named in first_error(response)["message"], params
    assert emulator.call("GET", "/exports").status_code == 400  # marketplaceId is required


# --- faults -------------------------------------------------------------------------------------

Switch = Callable[[Emulator, str, Any], None]


def by_python(emulator: Emulator, name: str, value: Any) -> None:
    faults = emulator.server.faults
    if name == "fail_exports":
        faults.fail_exports(
            value.get("count", 1),
            message=value.get("message", "Export generation failed: internal error"),
            date_start=value.get("dateStart"),
        )
    elif name == "forget_exports":
        faults.forget_exports(value)
    else:
        getattr(faults, name)(value)


def by_http(emulator: Emulator, name: str, value: Any) -> None:
    state = emulator.control({name: value})
    assert state[name]


SWITCHES = [pytest.param(by_python, id="python"), pytest.param(by_http, id="http")]


@pytest.mark.parametrize("switch", SWITCHES)
def test_fail_exports(emulator: Emulator, switch: Switch) -> None:
    switch(emulator, "fail_exports", {"count": 1})
    failed, fine = (
        emulator.create_id("2024-07-02", "2024-07-02"),
        emulator.create_id("2024-07-02", "2024-07-02"),
    )
    switch(emulator, "fail_exports", {"count": 1, "message": "Boom", "dateStart": "2024-07-04"})
    other_day = emulator.create_id("2024-07-03", "2024-07-04")
    that_day = emulator.create_id("2024-07-04", "2024-07-04")
    emulator.clock.advance(30)
    assert emulator.export(failed)["status"] == "PROCESSING"
    emulator.finish()
    error = emulator.export(failed)
    assert error["status"] == "ERROR" and error["invoicesDocumentIds"] == []
    assert error["errorMessage"] == "Export generation failed: internal error"
    assert error["generateExportFinishedAt"] > error["generateExportStartedAt"]
    assert emulator.export(fine)["status"] == "DONE"
    assert emulator.export(other_day)["status"] == "DONE"
    planned = emulator.export(that_day)
    assert (planned["status"], planned["errorMessage"]) == ("ERROR", "Boom")
    assert emulator.server.faults.snapshot()["fail_exports"] == []


@pytest.mark.parametrize("switch", SWITCHES)
def test_truncated_and_dropped_downloads(emulator: Emulator, switch: Switch) -> None:
    document_id = done_document(emulator)
    whole = emulator.download(document_id)
    switch(emulator, "truncate_downloads", 1)
    truncated = requests.get(emulator.url(document_id), timeout=10)
    assert truncated.status_code == 200
    assert int(truncated.headers["Content-Length"]) == len(truncated.content) == len(whole) // 2
    assert truncated.content == whole[: len(whole) // 2]
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(truncated.content))
    assert emulator.download(document_id) == whole
    switch(emulator, "drop_downloads", 1)
    with pytest.raises(requests.exceptions.RequestException):  # ChunkedEncodingError
        requests.get(emulator.url(document_id), timeout=10)
    assert emulator.download(document_id) == whole


@pytest.mark.parametrize("switch", SWITCHES)
def test_expire_urls(emulator: Emulator, switch: Switch) -> None:
    document_id = done_document(emulator)
    switch(emulator, "expire_urls", 2)
    for _ in range(2):
        response = requests.get(emulator.url(document_id), timeout=10)
        assert response.status_code == 403
        assert s3_error(response)["Message"] == "Request has expired"
    assert requests.get(emulator.url(document_id), timeout=10).status_code == 200


@pytest.mark.parametrize("switch", SWITCHES)
def test_forget_exports(emulator: Emulator, switch: Switch) -> None:
    kept, forgotten = (emulator.create_id("2024-07-02", "2024-07-02") for _ in range(2))
    switch(emulator, "forget_exports", [forgotten])
    response = emulator.call("GET", f"/exports/{forgotten}")
    assert response.status_code == 404 and first_error(response)["code"] == "NotFound"
    assert emulator.export(kept)["exportId"] == kept
    assert [e["exportId"] for e in emulator.listing().json()["exports"]] == [kept]


def test_fail_next_and_latency_reach_the_new_operations(emulator: Emulator) -> None:
    document_id = done_document(emulator)
    state = emulator.control(
        {
            "fail_next": [
                {"operation": "createInvoicesExport", "status": 503},
                {"operation": "getInvoicesExports", "status": 500},
                {"operation": "getInvoicesExport", "status": 500},
                {"operation": "getInvoicesDocument", "status": 503},
                {"operation": "download", "status": 500},
            ],
            "latency": {"download": 0.2},
        }
    )
    assert set(state["fail_next"]) == {
        "createInvoicesExport",
        "getInvoicesExports",
        "getInvoicesExport",
        "getInvoicesDocument",
        "download",
    }
    assert emulator.create(dateStart="2024-07-02", dateEnd="2024-07-02").status_code == 503
    assert emulator.listing().status_code == 500
    assert emulator.call("GET", "/exports/anything").status_code == 500
    assert emulator.call("GET", f"/documents/{document_id}").status_code == 503
    url = emulator.url(document_id)
    began = time.monotonic()
    failed = requests.get(url, timeout=10)
    assert time.monotonic() - began >= 0.2
    assert failed.status_code == 500 and s3_error(failed)["Code"] == "InternalError"
    assert requests.get(url, timeout=10).status_code == 200
    emulator.server.faults.fail_next("download", 503)
    assert s3_error(requests.get(url, timeout=10))["Code"] == "SlowDown"


def test_control_reports_and_resets_the_new_switches(emulator: Emulator) -> None:
    state = emulator.control(
        {
            "fail_exports": [{"count": 2, "dateStart": "2024-07-02"}],
            "truncate_downloads": 1,
            "drop_downloads": 2,
            "expire_urls": 3,
            "forget_exports": ["gone"],
        }
    )
    assert state["fail_exports"] == [
        {
            "count": 2,
            "message": "Export generation failed: internal error",
            "dateStart": "2024-07-02",
        }
    ]
    assert (state["truncate_downloads"], state["drop_downloads"], state["expire_urls"]) == (1, 2, 3)
    assert state["forget_exports"] == ["gone"]
    cleared = emulator.control({"reset_faults": True})
    assert cleared["fail_exports"] == [] and cleared["forget_exports"] == []
    assert cleared["truncate_downloads"] == cleared["drop_downloads"] == cleared["expire_urls"] == 0
    bad = requests.post(
        emulator.server.url + "/_emulator/control", json={"expire_url": 1}, timeout=10
    )
    assert bad.status_code == 400 and "expire_url" in first_error(bad)["message"]
    info = requests.get(emulator.server.url + "/_emulator/info", timeout=10).json()
    assert info["maxInvoicesPerDocument"] == 50 and info["documentUrlTtl"] == 30


# --- command line ------------------------------------------------------------------------------


def test_cli_flags_for_exports() -> None:
    args = parse_args(
        ["--max-invoices-per-document", "250", "--export-processing-seconds", "10-20",
         "--encoding-mix", "--epoch", "2024-07-20T12:00:00Z"]
    )  # fmt: skip
    assert args.max_invoices_per_document == 250
    assert args.export_processing_seconds == (10.0, 20.0)
    assert args.encoding_mix is True and args.epoch == EPOCH
    defaults = parse_args([])
    assert defaults.max_invoices_per_document == 1000
    assert defaults.export_processing_seconds == (60.0, 120.0)
    assert defaults.encoding_mix is False
    for bad in (["--export-processing-seconds", "20-10"], ["--max-invoices-per-document", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
