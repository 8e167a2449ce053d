"""NF-e parsing: real nfelib samples read field by field, schemas, exact decimals, hostile XML,
NF-e events.

Expected values never come from the parser's own tables: each column's NF-e path is taken from
its schema description ("NF-e: ide/nNF") and looked up in nfelib's bindings (real samples) or
in a document built from those paths (synthetic), so a wrong mapping or a wrong description
fails. The parsing speed is measured by `python scripts/bench.py --only parse` (part (d)), not
here: a test asserts what the parser returns, never how fast.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib.util
import itertools
import json
import re
import xml.etree.ElementTree as ET
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, FormatChecker

from source_sp_invoices.nfe import (
    HEADER_COLUMNS,
    ITEM_COLUMNS,
    NfeError,
    NfeParser,
    ParsedNfe,
)
from sp_api_emulator.dataset import Dataset
from sp_api_emulator.nfe_xml import ISO_8859_1, UTF8, UTF8_BOM, render

NS = "http://www.portalfiscal.inf.br/nfe"
SCHEMAS = Path(__file__).resolve().parent.parent / "source_sp_invoices" / "schemas"
HEADER_PROPERTIES: dict[str, Any] = json.loads(
    (SCHEMAS / "nfe_header_properties.json").read_text(encoding="utf-8")
)
ITEM_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "invoice_items.json").read_text("utf-8"))
# The stream adds where each item came from; the parser's own columns follow them.
WINDOW_COLUMNS = ("exportId", "invoicesDocumentId", "dateStart", "dateEnd")
ITEM_PROPERTIES: dict[str, Any] = {
    column: prop
    for column, prop in ITEM_SCHEMA["properties"].items()
    if column not in WINDOW_COLUMNS
}
ARRAY_COLUMNS = ("payments", "volumes", "installments")
# Columns whose documented path is not a plain lookup (checked by dedicated code below).
SPECIAL = frozenset(
    {"documentType", "accessKey", "icmsGroup", "referencedAccessKeys", *ARRAY_COLUMNS}
)
# The one nfelib sample whose totals are not the sum of its items: its single det is an
# excerpt, the totals (vProd 158106.35 against an item of 14.88) belong to a larger invoice.
TOTALS_NOT_FROM_ITEMS = frozenset({"nfe_reforma_tributaria.xml"})

PARSER = NfeParser()


# --- helpers: documented paths, schemas, formats -------------------------------------------------


def documented_path(prop: dict[str, Any]) -> str:
    """The NF-e path a schema description names ("... NF-e: total/ICMSTot/vNF")."""
    matches = re.findall(r"NF-e: (\S+)", prop["description"])
    assert len(matches) == 1, f"not one NF-e path in {prop['description']!r}"
    return matches[0].rstrip(".")


# The columns of an NF-e event: their paths start at procEventoNFe (evento/..., retEvento/...).
EVENT_COLUMNS = tuple(
    column
    for column, prop in HEADER_PROPERTIES.items()
    if documented_path(prop).split("/")[0] in ("evento", "retEvento")
)


def kind_of(prop: dict[str, Any]) -> str:
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if "number" in types:
        return "number"
    if "integer" in types:
        return "integer"
    if "array" in types:
        return "array"
    if "decimal string" in prop["description"]:
        return "decimal"
    return prop.get("format", "string")


def format_checker() -> FormatChecker:
    """Draft 7 formats with a strict date-time check that needs no optional package."""
    checker = FormatChecker()
    pattern = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")

    @checker.checks("date-time", raises=ValueError)
    def is_date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not pattern.fullmatch(value):
            return False
        datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    @checker.checks("date", raises=ValueError)
    def is_date(value: object) -> bool:
        if isinstance(value, str):
            date.fromisoformat(value)
        return True

    return checker


def closed(schema: Any) -> Any:
    """A copy of a schema whose objects, nested ones included, refuse keys they do not declare.

    The published schemas stay open (Airbyte's catalog checks refuse `additionalProperties:
    false`); the parser is held here to emit exactly the documented columns.
    """
    if isinstance(schema, list):
        return [closed(part) for part in schema]
    if not isinstance(schema, dict):
        return schema
    copy = {key: closed(part) for key, part in schema.items()}
    if isinstance(copy.get("properties"), dict):
        copy["additionalProperties"] = False
    return copy


HEADER_VALIDATOR = Draft7Validator(
    closed(
        {"type": "object", "properties": HEADER_PROPERTIES, "required": list(HEADER_PROPERTIES)}
    ),
    format_checker=format_checker(),
)
ITEM_VALIDATOR = Draft7Validator(closed(ITEM_SCHEMA), format_checker=format_checker())


def validate(parsed: ParsedNfe, invoice_id: str = "invoice-1") -> None:
    """Every record validates against its schema (formats included) and has every column."""
    errors = [e.message for e in HEADER_VALIDATOR.iter_errors(parsed.header)]
    assert not errors, errors[:5]
    for item in parsed.items:
        assert tuple(item) == ITEM_COLUMNS
        record = {"invoiceId": invoice_id, **item}
        errors = [f"{list(e.path)}: {e.message}" for e in ITEM_VALIDATOR.iter_errors(record)]
        assert not errors, errors[:5]


def assert_value(column: str, actual: Any, text: str | None, kind: str) -> None:
    """The parsed value is the XML text, typed as its schema says, exactly (empty = null)."""
    if not text:
        assert actual is None, f"{column}: expected null, got {actual!r}"
    elif kind == "number":
        assert type(actual) is float, f"{column}: {actual!r} is not a float"
        assert Decimal(repr(actual)) == Decimal(text.strip()), f"{column}: {actual!r} != {text}"
    elif kind == "integer":
        assert actual == int(text), f"{column}: {actual!r} != {text}"
    elif kind == "decimal":
        assert actual == text.strip(), f"{column}: {actual!r} != {text!r}"
    else:
        assert actual == text, f"{column}: {actual!r} != {text!r}"


def dec(value: Any) -> Decimal:
    """A column value as a Decimal (floats through their shortest repr, exactly the XML's)."""
    if value is None:
        return Decimal(0)
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


# --- nfelib: samples and an independent reader ---------------------------------------------------


def nfelib_samples() -> list[Path]:
    """The NF-e 4.00 files nfelib ships whose root is nfeProc or NFe (other layouts left out)."""
    spec = importlib.util.find_spec("nfelib")
    if spec is None or spec.origin is None:
        return []
    base = Path(spec.origin).parent / "nfe" / "samples"
    samples = []
    for path in sorted(base.rglob("*")):
        if path.suffix.lower() != ".xml":
            continue
        _, root = next(ET.iterparse(path, events=("start",)))
        if root.tag in (f"{{{NS}}}nfeProc", f"{{{NS}}}NFe"):
            samples.append(path)
    return samples


SAMPLES = nfelib_samples()
SAMPLE_PARAMS = [pytest.param(p, id=p.name) for p in SAMPLES] or [
    pytest.param(
        None,
        marks=pytest.mark.skip(reason="nfelib is not installed (pip install 'nfelib>=3.2,<4')"),
    )
]


def load_binding(path: Path) -> tuple[Any, Any]:
    """(nfeProc or None, NFe) read by nfelib's xsdata bindings."""
    from nfelib.nfe.bindings.v4_0.nfe_v4_00 import Nfe
    from nfelib.nfe.bindings.v4_0.proc_nfe_v4_00 import NfeProc

    _, root = next(ET.iterparse(path, events=("start",)))
    if root.tag == f"{{{NS}}}nfeProc":
        proc = NfeProc.from_path(str(path))
        return proc, proc.NFe
    return None, Nfe.from_path(str(path))


def binding_values(obj: Any, steps: list[str]) -> list[Any]:
    """Values at a path in nfelib objects: lists flattened, "*" = any child, "@x" = attribute x."""
    current = [obj]
    for step in steps:
        found: list[Any] = []
        for node in current:
            if not dataclasses.is_dataclass(node):
                continue
            if step == "*":
                children = [getattr(node, f.name) for f in dataclasses.fields(node)]
            else:
                children = [getattr(node, step.lstrip("@"), None)]
            for child in children:
                if isinstance(child, list):
                    found.extend(child)
                elif child is not None:
                    found.append(child)
        current = found
    return [plain(v) for v in current]


def plain(value: Any) -> Any:
    """nfelib's typed leaf values as the XML's text (enums, base64 bytes, xsdata date-times)."""
    from xsdata.models.datatype import XmlDateTime

    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, XmlDateTime):
        return str(value)
    return value


def binding_text(obj: Any, steps: list[str]) -> str | None:
    values = [v for v in binding_values(obj, steps) if isinstance(v, str)]
    assert len(set(values)) <= 1, f"{steps}: several values {values}"
    return values[0] if values else None


def header_base(path: str, proc: Any, nfe: Any) -> tuple[Any, list[str]]:
    """Where a documented header path starts: nfeProc, NFe or (by default) infNFe."""
    steps = path.split("/")
    if steps[0] == "protNFe":
        return proc, steps
    if steps[0] == "infNFe":
        return nfe, steps
    return nfe.infNFe, steps


# --- real samples --------------------------------------------------------------------------------


def test_nfelib_samples_are_found():
    if importlib.util.find_spec("nfelib") is None:
        pytest.skip("nfelib is not installed (pip install 'nfelib>=3.2,<4')")
    assert len(SAMPLES) >= 10  # nfelib 3.2 ships 19 NF-e 4.00 files (nfeProc or NFe roots)


@pytest.mark.parametrize("path", SAMPLE_PARAMS)
def test_samples_match_nfelib_field_by_field(path: Path):
    proc, nfe = load_binding(path)
    parsed = PARSER.parse(path.read_bytes())
    header = parsed.header
    assert tuple(header) == HEADER_COLUMNS
    assert header["documentType"] == "nfe"
    assert [c for c in EVENT_COLUMNS if header[c] is not None] == []

    for column, prop in HEADER_PROPERTIES.items():
        if column in SPECIAL or column in EVENT_COLUMNS:
            continue
        base, steps = header_base(documented_path(prop), proc, nfe)
        text = binding_text(base, steps) if base is not None else None
        assert_value(column, header[column], text, kind_of(prop))

    identifier = nfe.infNFe.Id.removeprefix("NFe")
    key = identifier if len(identifier) == 44 else proc.protNFe.infProt.chNFe
    assert header["accessKey"] == key
    refs_path = documented_path(HEADER_PROPERTIES["referencedAccessKeys"])
    refs = binding_values(nfe.infNFe, refs_path.split("/"))
    assert header["referencedAccessKeys"] == (refs or None)

    for column in ARRAY_COLUMNS:
        prop = HEADER_PROPERTIES[column]
        path_ = documented_path(prop)
        entries = binding_values(nfe.infNFe, path_.split("/"))
        if not entries:
            assert header[column] is None, column
            continue
        assert len(header[column]) == len(entries), column
        for entry, record in zip(entries, header[column], strict=True):
            for field, sub in prop["items"]["properties"].items():
                steps = documented_path(sub).removeprefix(path_ + "/").split("/")
                assert_value(
                    f"{column}.{field}", record[field], binding_text(entry, steps), kind_of(sub)
                )

    dets = nfe.infNFe.det
    assert [item["itemNumber"] for item in parsed.items] == [int(d.nItem) for d in dets]
    for det, item in zip(dets, parsed.items, strict=True):
        for column, prop in ITEM_PROPERTIES.items():
            if column in ("invoiceId", "itemNumber", "icmsGroup"):
                continue
            steps = documented_path(prop).split("/")[1:]  # relative to det
            assert_value(column, item[column], binding_text(det, steps), kind_of(prop))
        groups = [
            f.name
            for f in dataclasses.fields(det.imposto.ICMS)
            if getattr(det.imposto.ICMS, f.name) is not None
        ]
        assert item["icmsGroup"] == (groups[0] if groups else None)


@pytest.mark.parametrize("path", SAMPLE_PARAMS)
def test_sample_records_validate_against_the_schemas(path: Path):
    validate(PARSER.parse(path.read_bytes()))


@pytest.mark.parametrize("path", SAMPLE_PARAMS)
def test_sample_item_sums_agree_with_the_totals(path: Path):
    if path.name in TOTALS_NOT_FROM_ITEMS:
        pytest.skip("the sample's single det is an excerpt of a larger invoice")
    assert_totals_are_item_sums(PARSER.parse(path.read_bytes()))


# Totals of ICMSTot and the item column they sum (vProd only over items with indTot = 1).
TOTAL_OF = {
    "totalProducts": "grossValue",
    "totalDiscount": "discount",
    "totalFreight": "freight",
    "totalInsurance": "insurance",
    "totalOther": "otherExpenses",
    "totalIcmsBase": "icmsBase",
    "totalIcms": "icmsValue",
    "totalIcmsExempt": "icmsExemptValue",
    "totalFcp": "icmsFcpValue",
    "totalIcmsStBase": "icmsStBase",
    "totalIcmsSt": "icmsStValue",
    "totalFcpSt": "icmsFcpStValue",
    "totalFcpStWithheld": "icmsFcpStWithheldValue",
    "totalImportTax": "importTaxValue",
    "totalIpi": "ipiValue",
    "totalIpiReturned": "ipiReturnedValue",
    "totalPis": "pisValue",
    "totalCofins": "cofinsValue",
    "totalApproximateTaxes": "approximateTaxes",
}


def assert_totals_are_item_sums(parsed: ParsedNfe) -> None:
    header = parsed.header
    for total, column in TOTAL_OF.items():
        items = parsed.items
        if column == "grossValue":
            items = [i for i in items if i["includedInTotal"] == "1"]
        summed = sum((dec(i[column]) for i in items), Decimal(0))
        assert dec(header[total]) == summed, f"{total} {header[total]} != sum of {column} {summed}"


# --- every documented path is read (a synthetic document with every column) --------------------

# A concrete group for the wildcard steps of the documented paths.
CONCRETE = {
    "ICMS/*": "ICMS/ICMS90",
    "PIS/*": "PIS/PISOutr",
    "COFINS/*": "COFINS/COFINSOutr",
    "IPI/*": "IPI/IPITrib",
}
KEY = "35240112345678000195550010000012341000012345"


def concrete(path: str) -> str:
    for wildcard, group in CONCRETE.items():
        path = path.replace(wildcard, group)
    return path


def ensure(base: ET.Element, path: str) -> ET.Element:
    """The element at path under base, created (with missing ancestors) when absent."""
    element = base
    for step in path.split("/"):
        child = element.find(f"{{{NS}}}{step}")
        element = child if child is not None else ET.SubElement(element, f"{{{NS}}}{step}")
    return element


def place(base: ET.Element, path: str, text: str) -> None:
    """Add an element with text at path under base (or set an attribute, "@name")."""
    parent_path, _, last = path.rpartition("/")
    parent = ensure(base, parent_path) if parent_path else base
    if last.startswith("@"):
        parent.set(last[1:], text)
    else:
        ET.SubElement(parent, f"{{{NS}}}{last}").text = text


def sample_text(prop: dict[str, Any], n: int) -> str:
    kind = kind_of(prop)
    if kind in ("number", "integer"):
        return f"{n}.{n % 97:02d}" if kind == "number" else str(n)
    if kind == "decimal":
        return f"{n}.0000000001"
    if kind == "date-time":
        return f"2024-03-{n % 28 + 1:02d}T{n % 24:02d}:15:30-03:00"
    if kind == "date":
        return f"2024-04-{n % 28 + 1:02d}"
    return f"Text {n} ção"


def synthetic_document() -> tuple[bytes, dict[str, Any], list[dict[str, Any]]]:
    """An nfeProc holding every documented column once (arrays twice), and the expected texts."""
    counter = itertools.count(1)
    proc = ET.Element(f"{{{NS}}}nfeProc", versao="4.00")
    nfe = ET.SubElement(proc, f"{{{NS}}}NFe")
    info = ET.SubElement(nfe, f"{{{NS}}}infNFe", Id=f"NFe{KEY}")
    header: dict[str, Any] = {"accessKey": KEY}
    for column, prop in HEADER_PROPERTIES.items():
        path = documented_path(prop)
        if column in SPECIAL or column in EVENT_COLUMNS:
            continue
        text = sample_text(prop, next(counter))
        base = {"protNFe": proc, "infNFe": nfe}.get(path.split("/")[0], info)
        place(base, path, text)
        header[column] = text
    header["referencedAccessKeys"] = []
    group_path, _, leaf = documented_path(HEADER_PROPERTIES["referencedAccessKeys"]).rpartition("/")
    parent_path, _, group = group_path.rpartition("/")
    for _ in range(2):
        reference = ET.SubElement(ensure(info, parent_path), f"{{{NS}}}{group}")
        key = f"{next(counter):044d}"
        place(reference, leaf, key)
        header["referencedAccessKeys"].append(key)
    for column in ARRAY_COLUMNS:
        prop = HEADER_PROPERTIES[column]
        path = documented_path(prop)
        parent_path, _, tag = path.rpartition("/")
        parent = ensure(info, parent_path)
        header[column] = []
        for _ in range(2):
            entry = ET.SubElement(parent, f"{{{NS}}}{tag}")
            texts = {}
            for field, sub in prop["items"]["properties"].items():
                texts[field] = sample_text(sub, next(counter))
                place(entry, documented_path(sub).removeprefix(path + "/"), texts[field])
            header[column].append(texts)
    items = []
    for number in (1, 2):
        det = ET.SubElement(info, f"{{{NS}}}det", nItem=str(number))
        expected: dict[str, Any] = {"itemNumber": str(number), "icmsGroup": "ICMS90"}
        for column, prop in ITEM_PROPERTIES.items():
            if column in expected or column == "invoiceId":
                continue
            text = sample_text(prop, next(counter))
            place(det, concrete(documented_path(prop)).removeprefix("det/"), text)
            expected[column] = text
        items.append(expected)
    return ET.tostring(proc, encoding="utf-8"), header, items


def test_every_documented_column_is_read_from_its_path():
    data, header_texts, item_texts = synthetic_document()
    parsed = PARSER.parse(data)
    validate(parsed)
    header = parsed.header
    assert header["documentType"] == "nfe"
    unset = [c for c, v in header.items() if v is None]
    assert unset == list(EVENT_COLUMNS), unset  # an NF-e fills every column but an event's
    for column, text in header_texts.items():
        prop = HEADER_PROPERTIES[column]
        if column in ARRAY_COLUMNS:
            subs = prop["items"]["properties"]
            assert len(header[column]) == 2
            for record, texts in zip(header[column], text, strict=True):
                for field, sub_text in texts.items():
                    assert_value(field, record[field], sub_text, kind_of(subs[field]))
        elif column == "referencedAccessKeys":
            assert header[column] == text
        else:
            assert_value(column, header[column], text, kind_of(prop))
    assert len(parsed.items) == 2
    for item, texts in zip(parsed.items, item_texts, strict=True):
        assert None not in item.values(), [c for c, v in item.items() if v is None]
        for column, text in texts.items():
            assert_value(column, item[column], text, kind_of(ITEM_PROPERTIES[column]))


def test_schemas_document_every_column_and_nothing_else():
    assert list(HEADER_PROPERTIES) == list(HEADER_COLUMNS)
    assert list(ITEM_SCHEMA["properties"]) == ["invoiceId", *WINDOW_COLUMNS, *ITEM_COLUMNS]
    assert ITEM_SCHEMA["required"] == ["invoiceId", "itemNumber"]
    Draft7Validator.check_schema(ITEM_SCHEMA)
    Draft7Validator.check_schema({"type": "object", "properties": HEADER_PROPERTIES})
    for column, prop in [*HEADER_PROPERTIES.items(), *ITEM_PROPERTIES.items()]:
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", column), column
        if column not in ("invoiceId", "itemNumber"):
            assert prop["type"][0] == "null", f"{column} must be nullable"
            assert "NF-e: " in prop["description"], column
    # Never mixed types: a column is one JSON type, plus null.
    for prop in [*HEADER_PROPERTIES.values(), *ITEM_PROPERTIES.values()]:
        types = prop["type"] if isinstance(prop["type"], list) else ["null", prop["type"]]
        assert len(types) == 2 and types[0] == "null", prop


def test_decimal_strings_are_exactly_the_wide_nfe_types():
    strings = {c for c, p in ITEM_PROPERTIES.items() if kind_of(p) == "decimal"}
    assert strings == {
        "unitValue",  # vUnCom, TDec_1110v: up to 21 digits
        "taxableUnitValue",  # vUnTrib, TDec_1110v
        "ipiQuantity",  # qUnid, TDec_1204v: up to 16 digits
        "pisQuantityBase",  # qBCProd, TDec_1204v
        "pisStQuantityBase",
        "cofinsQuantityBase",
        "cofinsStQuantityBase",
    }
    assert not {c for c, p in HEADER_PROPERTIES.items() if kind_of(p) == "decimal"}


# --- the emulator's files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.generate(seed=11, start=date(2024, 3, 1), days=3, invoices_per_day=12)


def test_emulator_invoices_read_the_same_in_every_encoding(dataset: Dataset):
    for invoice in dataset.records():
        reference = PARSER.parse(render(invoice, UTF8))
        validate(reference, invoice.id)
        variants = [
            render(invoice, UTF8).decode("utf-8"),
            render(invoice, ISO_8859_1),
            render(invoice, ISO_8859_1).decode("iso-8859-1"),  # str declaring ISO-8859-1
            render(invoice, UTF8_BOM),
            render(invoice, UTF8_BOM).decode("utf-8"),  # str starting with U+FEFF
        ]
        for variant in variants:
            assert PARSER.parse(variant) == reference


def test_emulator_invoices_match_their_model(dataset: Dataset):
    for invoice in dataset.records():
        nfe = invoice.nfe
        parsed = PARSER.parse(render(invoice, ISO_8859_1).decode("iso-8859-1"))
        header = parsed.header
        assert header["accessKey"] == nfe.access_key
        assert header["number"] == str(nfe.number)
        assert header["series"] == str(nfe.series)
        assert header["issuerName"] == nfe.issuer.name  # non-ASCII names survive
        assert header["recipientName"] == nfe.recipient.name
        assert header["issuedAt"].endswith("-03:00")
        assert dec(header["totalInvoice"]) == nfe.totals.invoice_total
        assert dec(header["totalProducts"]) == nfe.totals.products
        assert header["protocolStatusCode"] == invoice.protocol.status_code
        assert header["payments"][0]["method"] == nfe.payment.method
        assert dec(header["payments"][0]["amount"]) == nfe.payment.amount
        assert len(parsed.items) == len(nfe.items)
        for item, model in zip(parsed.items, nfe.items, strict=True):
            assert item["itemNumber"] == model.number
            assert item["productCode"] == model.product_code
            assert item["ncm"] == model.ncm and item["cfop"] == model.cfop
            assert item["unitValue"] == f"{model.unit_value:.4f}"
            assert dec(item["commercialQuantity"]) == model.quantity
            assert dec(item["grossValue"]) == model.gross_value
            assert item["icmsCst"] == model.icms_cst
            assert dec(item["pisValue"]) == model.pis_value


def test_emulator_item_sums_agree_with_the_totals(dataset: Dataset):
    for invoice in dataset.records():
        assert_totals_are_item_sums(PARSER.parse(render(invoice)))


# --- forms of the document -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def document(dataset: Dataset) -> str:
    """One emulator nfeProc as text (with an XML declaration), with a card payment if any."""
    return render(dataset.records()[0], UTF8).decode("utf-8")


def test_a_plain_nfe_root_has_null_protocol_fields(document: str):
    plain = re.sub(r"<protNFe.*</protNFe>", "", document)
    plain = plain.replace(f'<nfeProc xmlns="{NS}" versao="4.00">', "").replace("</nfeProc>", "")
    assert plain.split("?>", 1)[1].startswith("<NFe")
    full, parsed = PARSER.parse(document), PARSER.parse(plain)
    protocol = [c for c in HEADER_COLUMNS if c.startswith("protocol")]
    assert all(parsed.header[c] is None for c in protocol)
    assert all(full.header[c] is not None for c in protocol)
    assert {k: v for k, v in parsed.header.items() if k not in protocol} == {
        k: v for k, v in full.header.items() if k not in protocol
    }
    assert parsed.items == full.items


def test_namespace_prefixes_are_read(document: str):
    prefixed = re.sub(r"<(/?)(?!\?)(\w+)", r"<\1nfe:\2", document)
    prefixed = prefixed.replace(f'xmlns="{NS}"', f'xmlns:nfe="{NS}"')
    assert "<nfe:nfeProc" in prefixed and "<nfe:vProd>" in prefixed
    assert PARSER.parse(prefixed) == PARSER.parse(document)


def test_an_unqualified_document_reads_like_a_qualified_one(document: str):
    bare = document.replace(f' xmlns="{NS}"', "")
    assert PARSER.parse(bare) == PARSER.parse(document)


def test_non_ascii_text_is_kept(document: str):
    name = "Açaí & Cia — 東京 😀 <ok>"
    escaped = name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"(<dest>.*?<xNome>)[^<]*", lambda m: m.group(1) + escaped, document)
    for variant in (text, text.encode("utf-8"), "\ufeff" + text):
        assert PARSER.parse(variant).header["recipientName"] == name
    declared = text.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    latin1 = declared.encode("iso-8859-1", errors="xmlcharrefreplace")
    assert PARSER.parse(latin1).header["recipientName"] == name
    assert PARSER.parse(declared).header["recipientName"] == name


def test_missing_optional_groups_give_nulls():
    xml = (
        f'<NFe xmlns="{NS}"><infNFe Id="NFe{KEY}" versao="4.00"><ide><nNF>7</nNF></ide>'
        '<det nItem="1"><prod><cProd>A</cProd></prod></det></infNFe></NFe>'
    )
    parsed = PARSER.parse(xml)
    validate(parsed)
    assert parsed.header["number"] == "7" and parsed.header["accessKey"] == KEY
    assert [c for c, v in parsed.header.items() if v is not None] == [
        "documentType",
        "accessKey",
        "layoutVersion",
        "number",
    ]
    assert parsed.items == [{**dict.fromkeys(ITEM_COLUMNS), "itemNumber": 1, "productCode": "A"}]


def test_empty_elements_give_null_and_unknown_tags_are_ignored():
    xml = (
        f'<NFe xmlns="{NS}"><infNFe Id="x"><ide><nNF/><natOp></natOp><future>1</future></ide>'
        "<!-- a comment --><total><ICMSTot><vNF>1.50</vNF></ICMSTot></total></infNFe></NFe>"
    )
    header = PARSER.parse(xml).header
    assert header["number"] is None and header["natureOfOperation"] is None
    assert header["accessKey"] is None  # neither a 44-digit Id nor a protocol
    assert header["totalInvoice"] == 1.5


def test_quoted_doctype_text_in_an_element_is_not_a_doctype(document: str):
    text = "<![CDATA[<!DOCTYPE html><b>&lol;</b>]]>"
    quoted = re.sub(r"<infCpl>[^<]*", f"<infCpl>{text}", document)
    assert PARSER.parse(quoted).header["additionalInfo"] == "<!DOCTYPE html><b>&lol;</b>"


def test_parser_is_reusable_after_errors(document: str):
    with pytest.raises(NfeError):
        PARSER.parse("<NFe")
    assert PARSER.parse(document).header["accessKey"]


# --- exact decimals ------------------------------------------------------------------------------

TRICKY = {
    "vProd": "0.1",
    "vNF": "1234567890123.45",
    "vDesc": "9999999999999.99",
    "vFrete": "0.30",
    "vSeg": "0.07",
    "vOutro": "100",
}


def tricky_document(values: dict[str, str] | None = None, **prod: str) -> str:
    totals = "".join(f"<{t}>{v}</{t}>" for t, v in (values or TRICKY).items())
    fields = {
        "qCom": "99999999999.9999",
        "vUnCom": "12345678901.1234567891",
        "vProd": "0.1",
        "qTrib": "0.0001",
        "vUnTrib": "0.0000000001",
    } | prod
    prod_xml = "".join(f"<{t}>{v}</{t}>" for t, v in fields.items())
    return (
        f'<NFe xmlns="{NS}"><infNFe Id="NFe{KEY}"><det nItem="1"><prod>{prod_xml}</prod>'
        f"</det><total><ICMSTot>{totals}</ICMSTot></total></infNFe></NFe>"
    )


def test_decimals_are_exactly_the_xml_values():
    parsed = PARSER.parse(tricky_document())
    header, item = parsed.header, parsed.items[0]
    columns = {
        "vProd": "totalProducts",
        "vNF": "totalInvoice",
        "vDesc": "totalDiscount",
        "vFrete": "totalFreight",
        "vSeg": "totalInsurance",
        "vOutro": "totalOther",
    }
    for tag, text in TRICKY.items():
        value = header[columns[tag]]
        assert Decimal(repr(value)) == Decimal(text)
        # What a JSON writer emits is the XML's value, read back exactly as a Decimal.
        assert json.loads(json.dumps(value), parse_float=Decimal) == Decimal(text)
    assert repr(header["totalProducts"]) == "0.1"
    assert repr(header["totalInvoice"]) == "1234567890123.45"
    assert repr(item["commercialQuantity"]) == "99999999999.9999"
    assert repr(item["taxableQuantity"]) == "0.0001"
    assert item["unitValue"] == "12345678901.1234567891"  # 21 digits: kept as text
    assert item["taxableUnitValue"] == "0.0000000001"
    # Python's float("0.1") + float("0.2") would not be 0.3: sums are made with Decimal.
    assert dec(0.1) + dec(0.2) == Decimal("0.3")


@pytest.mark.parametrize(
    ("tag", "text", "message"),
    [
        ("vNF", "12345678901234.567", "has 17 significant digits"),
        ("vNF", "1,50", "'1,50' is not a decimal number"),
        ("vNF", "1e5", "'1e5' is not a decimal number"),
        ("vNF", "NaN", "'NaN' is not a decimal number"),
        ("vNF", "1_000", "'1_000' is not a decimal number"),
        ("vNF", "1.2.3", "'1.2.3' is not a decimal number"),
        ("vNF", "١٢", "is not a decimal number"),  # non-ASCII digits
    ],
)
def test_values_that_are_not_exact_decimals_are_refused(tag, text, message):
    with pytest.raises(NfeError, match=re.escape(message)) as error:
        PARSER.parse(tricky_document({tag: text}))
    assert f"<{tag}> at line 1" in str(error.value)


def test_long_decimals_with_trailing_zeros_stay_numbers():
    parsed = PARSER.parse(tricky_document({"vNF": "  000123.4500000000000000  "}))
    assert parsed.header["totalInvoice"] == 123.45
    with pytest.raises(NfeError, match=r"<vUnCom> at line 1: 'abc' is not a decimal number"):
        PARSER.parse(tricky_document(vUnCom="abc"))


def test_an_item_needs_a_number():
    with pytest.raises(NfeError, match=r"<det> at line 1: nItem None is not an item number"):
        PARSER.parse(f'<NFe xmlns="{NS}"><infNFe><det><prod/></det></infNFe></NFe>')
    with pytest.raises(NfeError, match="nItem 'x1' is not an item number"):
        PARSER.parse(f'<NFe xmlns="{NS}"><infNFe><det nItem="x1"/></infNFe></NFe>')


# --- NF-e events ---------------------------------------------------------------------------------


def synthetic_event() -> tuple[ET.Element, dict[str, str]]:
    """A procEventoNFe holding every documented event column once, and the expected texts."""
    proc = ET.Element(f"{{{NS}}}procEventoNFe", versao="1.00")
    texts = {}
    for n, column in enumerate(EVENT_COLUMNS, 1):
        prop = HEADER_PROPERTIES[column]
        texts[column] = sample_text(prop, n)
        place(proc, documented_path(prop), texts[column])
    return proc, texts


def assert_event(parsed: ParsedNfe, texts: dict[str, str]) -> None:
    """An event's record: its event columns are the texts (null where none), nothing else set."""
    validate(parsed)
    assert parsed.items == []
    header = parsed.header
    assert header["documentType"] == "event"
    for column in EVENT_COLUMNS:
        prop = HEADER_PROPERTIES[column]
        assert_value(column, header[column], texts.get(column), kind_of(prop))
    others = [c for c, v in header.items() if v is not None and c not in EVENT_COLUMNS]
    assert others == ["documentType"]


def test_every_documented_event_column_is_read_from_its_path():
    proc, texts = synthetic_event()
    assert {documented_path(HEADER_PROPERTIES[c]).split("/")[0] for c in texts} == {
        "evento",
        "retEvento",
    }
    parsed = PARSER.parse(ET.tostring(proc, encoding="utf-8"))
    assert None not in (parsed.header[c] for c in EVENT_COLUMNS)
    assert_event(parsed, texts)
    assert type(parsed.header["eventSequence"]) is int


def test_an_event_without_its_registration_reads_as_the_event_alone():
    proc, texts = synthetic_event()
    event = proc.find(f"{{{NS}}}evento")
    assert event is not None
    unregistered = {c: t for c, t in texts.items() if documented_path(HEADER_PROPERTIES[c])
                    .startswith("evento/")}  # fmt: skip
    assert 0 < len(unregistered) < len(texts)
    assert_event(PARSER.parse(ET.tostring(event)), unregistered)  # a bare evento
    request = ET.Element(f"{{{NS}}}envEvento", versao="1.00")
    ET.SubElement(request, f"{{{NS}}}idLote").text = "1"
    request.append(event)  # a request to register one event
    assert_event(PARSER.parse(ET.tostring(request)), unregistered)


def test_an_event_request_of_several_events_is_not_one_record():
    proc, _ = synthetic_event()
    event = ET.tostring(proc.find(f"{{{NS}}}evento")).decode()
    request = f'<envEvento xmlns="{NS}"><idLote>1</idLote>{event}{event}</envEvento>'
    with pytest.raises(NfeError, match="^envEvento holds 2 evento elements: a record describes"):
        PARSER.parse(request)
    with pytest.raises(NfeError, match="envEvento holds 0 evento elements"):
        PARSER.parse(f'<envEvento xmlns="{NS}"><idLote>1</idLote></envEvento>')


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        (f'<procEventoNFe xmlns="{NS}"><retEvento/></procEventoNFe>', "procEventoNFe holds no"),
        (f'<evento xmlns="{NS}"><Signature/></evento>', "evento holds no infEvento element"),
        (f'<retEvento xmlns="{NS}"/>', "not an NF-e: the root element is <retEvento>"),
        ('<procEventoNFe xmlns="urn:other"/>', "the root element is <procEventoNFe> (namespace"),
    ],
)
def test_what_is_not_an_event_is_refused(xml, message):
    with pytest.raises(NfeError, match=re.escape(message)):
        PARSER.parse(xml)


def test_event_forms_read_alike():
    proc, texts = synthetic_event()
    qualified = ET.tostring(proc, encoding="unicode")
    bare = qualified.replace(f' xmlns="{NS}"', "").replace(f'xmlns:ns0="{NS}"', "")
    bare = re.sub(r"<(/?)ns0:", r"<\1", bare)
    assert "ns0:" not in bare and NS not in bare
    declared = '<?xml version="1.0" encoding="ISO-8859-1"?>' + qualified
    for form in (bare, declared, declared.encode("iso-8859-1", "xmlcharrefreplace")):
        assert PARSER.parse(form) == PARSER.parse(qualified)


def test_nfelib_correction_letter_matches_field_by_field():
    spec = importlib.util.find_spec("nfelib")
    if spec is None or spec.origin is None:
        pytest.skip("nfelib is not installed (pip install 'nfelib>=3.2,<4')")
    from nfelib.nfe_evento_cce.bindings.v1_0.cce_v1_00 import Evento

    samples = sorted((Path(spec.origin).parent / "nfe_evento_cce" / "samples").rglob("*.xml"))
    assert samples, "nfelib ships a correction letter (a bare evento)"
    for path in samples:
        event = Evento.from_path(str(path))
        parsed = PARSER.parse(path.read_bytes())
        texts = {}
        for column in EVENT_COLUMNS:
            steps = documented_path(HEADER_PROPERTIES[column]).split("/")
            if steps[0] == "evento":  # a bare evento: no registration
                texts[column] = binding_text(event, steps[1:])
        sequence = binding_values(event, ["infEvento", "nSeqEvento"])
        texts["eventSequence"] = str(sequence[0]) if sequence else None
        assert texts["eventType"] == "110110" and texts["eventCorrection"]
        assert_event(parsed, {c: t for c, t in texts.items() if t is not None})


# --- what is not an NF-e ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "line", "column"),
    [
        ("<NFe><infNFe></NFe>", 1, 20),
        ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<NFe>\n  <ide x=1/>\n</NFe>', 3, 10),
        ('<?xml version="1.0" encoding="UTF-8"?><NFe><a></b></NFe>', 1, 51),
        ("", 1, 1),
    ],
)
def test_xml_that_is_not_well_formed_names_line_and_column(xml, line, column):
    with pytest.raises(NfeError, match=rf"not well-formed XML at line {line}, column {column}: "):
        PARSER.parse(xml)
    # The same position as lxml reports for the bytes, declaration and all.
    if xml:
        with pytest.raises(NfeError, match=rf"at line {line}, column {column}: "):
            PARSER.parse(xml.encode("iso-8859-1"))


def test_error_positions_are_the_same_for_text_with_a_bom_and_for_bytes():
    xml = '\ufeff<?xml version="1.0" encoding="UTF-8"?><NFe><a></b></NFe>'
    with pytest.raises(NfeError) as from_text:
        PARSER.parse(xml)
    with pytest.raises(NfeError) as from_bytes:
        PARSER.parse(xml.encode("utf-8"))
    assert str(from_text.value) == str(from_bytes.value)
    assert "line 1, column " in str(from_text.value)


def test_text_declaring_a_single_byte_encoding_is_read():
    xml = (
        '<?xml version="1.0" encoding="windows-1252"?>\r\n'
        f'<NFe xmlns="{NS}"><infNFe><ide><natOp>Venda – 10 € à vista</natOp></ide></infNFe></NFe>'
    )
    expected = "Venda – 10 € à vista"
    assert PARSER.parse(xml).header["natureOfOperation"] == expected
    assert PARSER.parse(xml.encode("cp1252")).header["natureOfOperation"] == expected


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ("<html><body/></html>", "not an NF-e: the root element is <html> (no namespace)"),
        (
            '<NFe xmlns="urn:other"/>',
            "not an NF-e: the root element is <NFe> (namespace urn:other)",
        ),
        (f'<nfeProc xmlns="{NS}"><protNFe/></nfeProc>', "nfeProc holds no NFe element"),
        (f'<NFe xmlns="{NS}"><Signature/></NFe>', "NFe holds no infNFe element"),
        (f'<cteProc xmlns="{NS}"/>', "not an NF-e: the root element is <cteProc>"),
    ],
)
def test_xml_that_is_not_an_nfe_is_refused(xml, message):
    with pytest.raises(NfeError, match=re.escape(message)):
        PARSER.parse(xml)


def test_other_nfelib_layouts_are_refused():
    spec = importlib.util.find_spec("nfelib")
    if spec is None or spec.origin is None:
        pytest.skip("nfelib is not installed (pip install 'nfelib>=3.2,<4')")
    others = sorted((Path(spec.origin).parent / "nfe" / "samples").rglob("*-ped-inu.xml"))
    assert others
    with pytest.raises(NfeError, match="not an NF-e: the root element is <inutNFe>"):
        PARSER.parse(others[0].read_bytes())


def test_input_must_be_text_or_bytes():
    with pytest.raises(TypeError, match="must be str or bytes"):
        PARSER.parse(42)  # type: ignore[arg-type]


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE NFe [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
        for i in range(1, 10)
    )
    + f']>\n<NFe xmlns="{NS}"><infNFe><ide><natOp>&lol9;</natOp></ide></infNFe></NFe>'
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE NFe [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'<NFe xmlns="{NS}"><infNFe><ide><natOp>&xxe;</natOp></ide></infNFe></NFe>'
)
EXTERNAL_DTD = (
    '<!DOCTYPE NFe SYSTEM "http://attacker.invalid/nfe.dtd">'
    f'<NFe xmlns="{NS}"><infNFe><ide><natOp>x</natOp></ide></infNFe></NFe>'
)


@pytest.mark.parametrize("xml", [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_doctypes_and_entities_are_refused(xml, as_bytes):
    data = xml.encode() if as_bytes else xml
    with pytest.raises(NfeError, match="refused: the document has a DOCTYPE"):
        PARSER.parse(data)


REFUSED_DOCTYPE = "refused: the document has a DOCTYPE (DTDs and entities are not allowed)"


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        # lxml stops the expansion where the first entity is used (its reason follows)
        (BILLION_LAUGHS, "not well-formed XML at line 1, column 7: "),
        (EXTERNAL_ENTITY, REFUSED_DOCTYPE),
        (EXTERNAL_DTD, REFUSED_DOCTYPE),
    ],
    ids=["billion-laughs", "external-entity", "external-dtd"],
)
@pytest.mark.parametrize(
    "disguise",
    [
        lambda xml: xml.encode("utf-16"),  # "<!DOCTYPE" is not in the bytes
        lambda xml: ("<!-- <a -->" + xml).encode(),  # looks like text after a start tag
    ],
    ids=["utf-16", "comment"],
)
def test_doctypes_hidden_from_the_byte_scan_are_refused_too(xml, message, disguise):
    # The scan only gives a clear message early; lxml's hardened parser still decides.
    data = disguise(xml.replace('<?xml version="1.0"?>', ""))
    with pytest.raises(NfeError) as error:
        PARSER.parse(data)
    assert "root:" not in str(error.value)  # no file content leaked into a message
    if message == REFUSED_DOCTYPE:
        assert str(error.value) == message
    else:
        assert str(error.value).startswith(message)


def test_an_external_subset_is_never_read(tmp_path: Path):
    unreadable = tmp_path / "broken.dtd"
    unreadable.write_text("this is not a DTD <<<")
    xml = f'<!DOCTYPE NFe SYSTEM "{unreadable.as_uri()}"><NFe xmlns="{NS}"><infNFe/></NFe>'
    for data in (xml.encode("utf-16"), ("<!-- <a -->" + xml).encode()):
        with pytest.raises(NfeError) as error:
            PARSER.parse(data)
        # Had lxml read the file, it would fail on its content ("external subset").
        assert str(error.value) == REFUSED_DOCTYPE
