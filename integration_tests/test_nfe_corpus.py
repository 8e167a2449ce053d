"""Real NF-e from many emitters, read as a seller reads them: the corpus beside the repository.

`../shared/nfe-samples` (from the repository's root) holds 40 NF-e / NFC-e 4.00 files and 5
NF-e events (`events/`), copied from public repositories of NF-e libraries, ERPs and DANFE
tools; its SOURCES.md says where each comes from. The emulator serves them all, byte for byte,
in one export (`EmulatorServer.serve_xml`), and the installed CLI reads every stream. Each
column whose schema description names an NF-e path is then compared with that path, read
from the file with lxml XPath built from the description alone (never from the parser's
tables), in `invoice_documents` and `invoice_items`. Files that break the layout (a `det`
without `nItem`) must land with `nfeParseError`; events as events.

Some files are real documents with company and consumer data: no assertion message here
quotes a value of a file, only its name, the column and its path. A clone without the corpus
skips these tests, saying why.
"""

from __future__ import annotations

import codecs
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from integration_tests.conftest import ALL_STREAMS, TIME_SCALE, Cli, CliRun, catalog
from source_sp_invoices import json_schemas
from sp_api_emulator import Dataset, EmulatorServer

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "nfe-samples"
NS = "http://www.portalfiscal.inf.br/nfe"
XPATH_NS = {"n": NS}
DAY = date(2024, 1, 1)
# Only the NF-e part of invoice_documents: the stream's own columns have no NF-e path.
DOCUMENT_SCHEMA = json_schemas.stream_schema("invoice_documents")["properties"]
ITEM_SCHEMA = json_schemas.stream_schema("invoice_items")["properties"]
# A hardened reader for the files themselves: no entities, DTDs or network.
READER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def corpus_files() -> list[Path]:
    """The corpus's NF-e files, then its events, each sorted by name (none without a corpus)."""
    if not CORPUS.is_dir():
        return []
    return sorted(CORPUS.glob("*.xml")) + sorted((CORPUS / "events").glob("*.xml"))


FILES = corpus_files()
ABSENT = f"the NF-e corpus is absent: no folder {CORPUS} (../shared/nfe-samples beside the repo)"
FILE_PARAMS = [pytest.param(path, id=path.name) for path in FILES] or [
    pytest.param(None, marks=pytest.mark.skip(reason=ABSENT))
]


# --- reading a file by the paths the schemas document ---------------------------------------


def documented_path(prop: dict[str, Any]) -> str | None:
    """The NF-e path a column's description names ("... NF-e: total/ICMSTot/vNF"), if any."""
    found = re.findall(r"NF-e: (\S+)", prop.get("description", ""))
    assert len(found) <= 1, prop["description"]
    return found[0].rstrip(".") if found else None


def xpath_of(path: str) -> str:
    """A documented path as XPath in the NF-e namespace: "ICMS/*/vBC" → "n:ICMS/*/n:vBC"."""
    steps = path.split("/")
    return "/".join(s if s == "*" or s.startswith("@") else f"n:{s}" for s in steps)


def texts_at(base: Any, path: str) -> list[str]:
    """The texts (or attribute values) at a documented path below an element."""
    if base is None:
        return []
    found = base.xpath(xpath_of(path), namespaces=XPATH_NS)
    return [str(node) if isinstance(node, str) else (node.text or "") for node in found]


def kind_of(prop: dict[str, Any]) -> str:
    """How a column holds its XML text: number, integer, array, decimal string or text."""
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    for kind in ("number", "integer", "array"):
        if kind in types:
            return kind
    return "decimal" if "decimal string" in prop["description"] else "string"


def same(value: Any, text: str | None, kind: str) -> bool:
    """Whether a record's value is exactly the XML's text, typed as the schema says."""
    if not text:
        return value is None  # a missing or empty element is null
    try:
        if kind == "number":
            return type(value) in (int, float) and Decimal(repr(value)) == Decimal(text.strip())
        if kind == "integer":
            return type(value) is int and value == int(text)
    except (ArithmeticError, ValueError):  # the text is no number: the value cannot be it
        return False
    if kind == "decimal":
        return value == text.strip()
    return value == text


@dataclass
class Comparison:
    """What one file's records were compared with: counts, and the columns that differ."""

    values: int = 0  # (record, column) pairs compared
    set_values: int = 0  # of which the file holds a value (not null)
    problems: list[str] = field(default_factory=list)

    def check(self, where: str, column: str, value: Any, texts: list[str], kind: str) -> None:
        """Compare one column with the texts at its path (no value is ever quoted)."""
        self.values += 1
        if len(set(texts)) > 1:
            self.problems.append(f"{where}: {column}: its path holds {len(texts)} values")
            return
        text = texts[0] if texts else None
        self.set_values += bool(text)
        if not same(value, text, kind):
            expected = "null" if not text else f"the {kind} at its path"
            self.problems.append(f"{where}: {column} is not {expected}")


# --- the corpus read once, through the emulator and the CLI --------------------------------


class Record(dict[str, Any]):
    """A record whose repr (in a failing test's traceback) shows no value of the file."""

    def __repr__(self) -> str:
        return f"<record of {len(self)} columns>"


@dataclass(repr=False, eq=False)
class CorpusRead:
    """One read of every corpus file: the file each invoice id stands for, and the records
    (compared by identity, shown without their values)."""

    invoice_ids: dict[str, str]  # file name -> invoice id
    run: CliRun
    documents: dict[str, dict[str, Any]]  # invoice id -> its invoice_documents record
    items: dict[str, list[dict[str, Any]]]  # invoice id -> its invoice_items, by itemNumber

    def __repr__(self) -> str:
        return f"<the corpus read: {len(self.documents)} documents>"


@contextmanager
def serving_corpus() -> Iterator[tuple[list[str], dict[str, Any]]]:
    """An emulator serving every corpus file, byte for byte, as one invoice each of DAY: the
    invoice ids of the files, in order, and a config that reads that day."""
    dataset = Dataset.generate(seed=5, start=DAY, days=1, invoices_per_day=len(FILES))
    with EmulatorServer(
        dataset, time_scale=TIME_SCALE, export_queue_seconds=1, export_processing_seconds=(5, 10)
    ) as emulator:
        ids = emulator.serve_xml(path.read_bytes() for path in FILES)
        yield (
            ids,
            emulator.connector_config(
                f"{DAY}T00:00:00Z", replication_end_date="2024-01-02T00:00:00Z"
            ),
        )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusRead:
    if not FILES:
        pytest.skip(ABSENT)
    with serving_corpus() as (ids, config):
        run = Cli(tmp_path_factory.mktemp("corpus")).run(
            "read", config, catalog=catalog(*ALL_STREAMS)
        )
    assert run.returncode == 0, run.errors()
    documents = {r["invoiceId"]: Record(r) for r in run.records("invoice_documents")}
    items: dict[str, list[dict[str, Any]]] = {}
    for item in run.records("invoice_items"):
        items.setdefault(item["invoiceId"], []).append(Record(item))
    for own in items.values():
        own.sort(key=lambda item: item["itemNumber"])
    assert len(documents) == len(FILES)  # one record per file, none twice
    return CorpusRead(dict(zip((p.name for p in FILES), ids, strict=True)), run, documents, items)


@cache
def root_of(path: Path) -> Any:
    return etree.fromstring(path.read_bytes(), READER)


def local_name(element: Any) -> str:
    return etree.QName(element).localname


def lacks_item_numbers(root: Any) -> bool:
    """A det without its required nItem: the file breaks the NF-e layout."""
    return bool(root.xpath("//n:infNFe/n:det[not(@nItem)]", namespaces=XPATH_NS))


NFE_ROOTS, EVENT_ROOTS = {"nfeProc", "NFe"}, {"procEventoNFe", "evento", "envEvento"}
EVENT_COLUMNS = [
    column
    for column, prop in DOCUMENT_SCHEMA.items()
    if (documented_path(prop) or "").split("/")[0] in ("evento", "retEvento")
]
# Columns whose documented path is not one plain lookup: compared by their own code below.
SPECIAL = {"documentType", "accessKey", "referencedAccessKeys", *EVENT_COLUMNS}


def header_base(root: Any, path: str) -> Any:
    """Where a header path starts: nfeProc for protNFe/..., NFe for infNFe/..., else infNFe."""
    nfe = root if local_name(root) == "NFe" else root.find(f"{{{NS}}}NFe")
    first = path.split("/")[0]
    if first == "protNFe":
        return root if local_name(root) == "nfeProc" else None
    if first == "infNFe":
        return nfe
    return nfe.find(f"{{{NS}}}infNFe")


def compare_nfe(
    name: str, root: Any, record: dict[str, Any], items: list[dict[str, Any]]
) -> Comparison:
    """Every NF-e column of the file's two streams against the paths their descriptions name."""
    seen = Comparison()
    info = header_base(root, "ide")
    for column, prop in DOCUMENT_SCHEMA.items():
        path = documented_path(prop)
        if path is None or column in SPECIAL:
            continue
        if kind_of(prop) != "array":
            texts = texts_at(header_base(root, path), path)
            seen.check(name, column, record.get(column), texts, kind_of(prop))
            continue
        entries = info.xpath(xpath_of(path), namespaces=XPATH_NS)
        values = record.get(column) or []
        seen.values += 1
        if len(values) != len(entries):
            seen.problems.append(f"{name}: {column} holds {len(values)} of {len(entries)}")
            continue
        for n, (entry, value) in enumerate(zip(entries, values, strict=True)):
            for sub, sub_prop in prop["items"]["properties"].items():
                relative = str(documented_path(sub_prop)).removeprefix(path + "/")
                texts = texts_at(entry, relative)
                seen.check(f"{name} {column}[{n}]", sub, value.get(sub), texts, kind_of(sub_prop))

    identifier = info.get("Id", "").removeprefix("NFe")
    keys = [identifier] if len(identifier) == 44 else texts_at(root, "protNFe/infProt/chNFe")
    seen.check(name, "accessKey", record.get("accessKey"), keys, "string")
    references = texts_at(info, documented_path(DOCUMENT_SCHEMA["referencedAccessKeys"]))
    seen.values += 1
    if record.get("referencedAccessKeys") != (references or None):
        seen.problems.append(f"{name}: referencedAccessKeys are not the refNFe of ide/NFref")
    for column in ("documentType", *EVENT_COLUMNS):
        texts = ["nfe"] if column == "documentType" else []
        seen.check(name, column, record.get(column), texts, "string")

    dets = info.findall(f"{{{NS}}}det")
    seen.values += 1
    if [item["itemNumber"] for item in items] != [int(det.get("nItem")) for det in dets]:
        seen.problems.append(f"{name}: the items are not one per det, numbered by nItem")
        return seen
    for det, item in zip(dets, items, strict=True):
        where = f"{name} item {item['itemNumber']}"
        for column, prop in ITEM_SCHEMA.items():
            path = documented_path(prop)
            if path is None or column in ("itemNumber", "icmsGroup"):
                continue
            texts = texts_at(det, path.removeprefix("det/"))
            seen.check(where, column, item.get(column), texts, kind_of(prop))
        groups = [
            local_name(group) for group in det.xpath("n:imposto/n:ICMS/*", namespaces=XPATH_NS)
        ]
        seen.check(where, "icmsGroup", item.get("icmsGroup"), groups[:1], "string")
    return seen


def compare_event(name: str, root: Any, record: dict[str, Any], items: list[Any]) -> Comparison:
    """An event's record: its event columns are the paths' texts, every NF-e column is null."""
    seen = Comparison()
    for column in EVENT_COLUMNS:
        prop = DOCUMENT_SCHEMA[column]
        seen.check(
            name, column, record.get(column), texts_at(root, documented_path(prop)), kind_of(prop)
        )
    seen.check(name, "documentType", record.get("documentType"), ["event"], "string")
    for column, prop in DOCUMENT_SCHEMA.items():
        nfe_column = column not in SPECIAL or column in ("accessKey", "referencedAccessKeys")
        if documented_path(prop) is not None and nfe_column:
            seen.check(name, column, record.get(column), [], kind_of(prop))
    seen.values += 1
    if items:
        seen.problems.append(f"{name}: an event has {len(items)} invoice_items")
    return seen


@cache
def comparison(corpus: CorpusRead, path: Path) -> Comparison:
    invoice_id = corpus.invoice_ids[path.name]
    record, items = corpus.documents[invoice_id], corpus.items.get(invoice_id, [])
    root = root_of(path)
    if local_name(root) in EVENT_ROOTS:
        return compare_event(path.name, root, record, items)
    return compare_nfe(path.name, root, record, items)


# --- the tests ---------------------------------------------------------------------------------


def test_the_corpus_is_every_file_sources_md_lists():
    if not FILES:
        pytest.skip(ABSENT)
    listed = re.findall(
        r"^\| ((?:events/)?[\w.-]+\.xml) \|", (CORPUS / "SOURCES.md").read_text("utf-8"), re.M
    )
    assert sorted(listed) == sorted(p.relative_to(CORPUS).as_posix() for p in FILES)
    roots = Counter(local_name(root_of(path)) for path in FILES)
    assert roots["nfeProc"] + roots["NFe"] >= 40 and roots["procEventoNFe"] >= 5, roots


@pytest.mark.parametrize("path", FILE_PARAMS)
def test_each_file_lands_with_its_exact_text(corpus: CorpusRead, path: Path):
    record = corpus.documents[corpus.invoice_ids[path.name]]
    data = path.read_bytes()
    encoding = root_of(path).getroottree().docinfo.encoding or "utf-8"
    text = data.decode("utf-8-sig" if data.startswith(codecs.BOM_UTF8) else encoding)
    assert record["xml"] == text, f"{path.name}: the xml column is not the file's text"
    assert record["fileName"] == f"{corpus.invoice_ids[path.name]}.xml"


@pytest.mark.parametrize("path", FILE_PARAMS)
def test_each_column_holds_what_its_nfe_path_says(corpus: CorpusRead, path: Path):
    root = root_of(path)
    record = corpus.documents[corpus.invoice_ids[path.name]]
    if lacks_item_numbers(root):
        pytest.skip("breaks the layout (a det without nItem): see the test of such files")
    assert record.get("nfeParseError") is None, f"{path.name}: {record.get('nfeParseError')}"
    seen = comparison(corpus, path)
    assert seen.values > 0
    assert not seen.problems, seen.problems


def test_files_with_an_unnumbered_item_land_with_a_parse_error_and_no_items(corpus: CorpusRead):
    broken = [
        path
        for path in FILES
        if local_name(root_of(path)) in NFE_ROOTS and lacks_item_numbers(root_of(path))
    ]
    assert len(broken) == 2, [path.name for path in broken]  # SOURCES.md: two break the XSD
    for path in broken:
        invoice_id = corpus.invoice_ids[path.name]
        record = corpus.documents[invoice_id]
        assert re.fullmatch(
            r"<det> at line \d+: nItem None is not an item number", record["nfeParseError"]
        )
        nfe_columns = [
            c
            for c, p in DOCUMENT_SCHEMA.items()
            if documented_path(p) and record.get(c) is not None
        ]
        assert nfe_columns == [], f"{path.name}: {nfe_columns}"
        assert invoice_id not in corpus.items
    warnings = corpus.run.logs()
    assert all(f"{corpus.invoice_ids[p.name]}.xml of export" in warnings for p in broken)


def test_each_event_is_an_event_that_joins_the_nfe_it_changes(corpus: CorpusRead):
    events = [path for path in FILES if local_name(root_of(path)) in EVENT_ROOTS]
    assert len(events) >= 5
    records = list(corpus.documents.values())
    by_key = {r["accessKey"]: r for r in records if r.get("accessKey")}
    joined = 0
    for path in events:
        record = corpus.documents[corpus.invoice_ids[path.name]]
        assert record.get("nfeParseError") is None, path.name
        assert record["documentType"] == "event"
        key = texts_at(root_of(path), "evento/infEvento/chNFe")
        refers = [record["eventAccessKey"]] == key and len(key[0]) == 44  # no key in a message
        assert refers, f"{path.name}: eventAccessKey is not the 44 digits of chNFe"
        assert record["eventType"] in ("110110", "110111"), path.name
        text = "eventCorrection" if record["eventType"] == "110110" else "eventJustification"
        assert record.get(text), f"{path.name}: no {text}"
        assert record["eventStatusCode"] == "135" and record.get("eventProtocolNumber"), path.name
        nfe = by_key.get(record["eventAccessKey"])
        if nfe is not None:  # the invoice it changes is in the corpus too: the documented join
            assert nfe["documentType"] == "nfe"
            joined += 1
    # events/E3 cancels 26-caldim-sn201-cancelada.xml (SOURCES.md)
    assert joined >= 1
    assert len(corpus.run.records("invoice_documents")) == len(FILES)


def test_the_corpus_counts(corpus: CorpusRead, capsys: pytest.CaptureFixture[str]):
    """How much was compared (printed, unless pytest-xdist runs the test), and that it is the
    whole corpus."""
    compared = [comparison(corpus, p) for p in FILES if not lacks_item_numbers(root_of(p))]
    values = sum(c.values for c in compared)
    set_values = sum(c.set_values for c in compared)
    events = sum(local_name(root_of(p)) in EVENT_ROOTS for p in FILES)
    items = sum(len(own) for own in corpus.items.values())
    with capsys.disabled():
        print(
            f"\nNF-e corpus: {len(FILES)} files ({events} events), {len(compared)} compared "
            f"column by column: {values} values ({set_values} set in the XML), {items} items"
        )
    assert all(not c.problems for c in compared)
    assert len(compared) == len(FILES) - 2 and set_values > 1000
