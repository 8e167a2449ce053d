"""erd/source.dbml draws what the connector emits, and cannot drift from it.

The diagram is read with a small DBML parser (tables, columns, primary keys, notes, refs) and
held to the catalog that `discover` announces, run in-process: every stream is a table, every
top-level column of its schema is a column with its type, the primary key and the cursor are
marked, and every join names columns that exist. Then the file must be what `make erd` writes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ERD = ROOT / "erd" / "source.dbml"
DOC = ROOT / "docs" / "sp-invoices.md"


def _load_script():
    spec = importlib.util.spec_from_file_location("erd_script", ROOT / "scripts" / "erd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


erd = _load_script()


# --- a small DBML reader ------------------------------------------------------------------------


@dataclass
class Column:
    type: str
    settings: list[str]


@dataclass
class Table:
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: list[str] = field(default_factory=list)
    note: str = ""


NAME = r'"([^"]+)"|(\w+)'
TABLE = re.compile(rf"^Table\s+(?:{NAME})\s*{{$")
COLUMN = re.compile(rf"^(?:{NAME})\s+(\S+)(?:\s+\[(.*)\])?$")
INDEX = re.compile(r"^\((.*)\)\s+\[(.*)\]$")
REF = re.compile(r"^Ref(?:\s+\w+)?:\s*(.+?)\s*(<>|[<>\-])\s*(.+)$")
ENDPOINT = re.compile(rf"^(?:{NAME})\.(?:{NAME})$")


def _name(match: re.Match[str], first: int) -> str:
    return match.group(first) or match.group(first + 1)


def _settings(text: str | None) -> list[str]:
    """The settings of a column, split on the commas outside quotes."""
    return [s.strip() for s in re.findall(r"(?:[^,']|'(?:\\.|[^'])*')+", text or "")]


def _endpoint(text: str) -> tuple[str, str]:
    match = ENDPOINT.match(text.strip())
    assert match, f"a ref endpoint must be table.column: {text}"
    return _name(match, 1), _name(match, 3)


def parse_dbml(
    text: str,
) -> tuple[dict[str, Table], list[tuple[tuple[str, str], str, tuple[str, str]]]]:
    """The tables and refs of a DBML file (the subset erd/source.dbml uses)."""
    tables: dict[str, Table] = {}
    refs = []
    current: Table | None = None
    in_indexes = False
    for raw in text.splitlines():
        line = raw.split("//", 1)[0].strip() if not raw.strip().startswith("Note") else raw.strip()
        if not line:
            continue
        if current is None:
            if match := TABLE.match(line):
                current = tables.setdefault(_name(match, 1), Table())
            elif match := REF.match(line):
                refs.append((_endpoint(match.group(1)), match.group(2), _endpoint(match.group(3))))
            else:
                raise AssertionError(f"not DBML this reader knows: {raw}")
        elif in_indexes:
            if line == "}":
                in_indexes = False
            elif match := INDEX.match(line):
                columns = [c.strip().strip('"') for c in match.group(1).split(",")]
                if "pk" in _settings(match.group(2)):
                    current.primary_key = columns
        elif line == "}":
            current = None
        elif line == "indexes {":
            in_indexes = True
        elif line.startswith("Note:"):
            current.note = line.removeprefix("Note:").strip()
        elif match := COLUMN.match(line):
            settings = _settings(match.group(4))
            current.columns[_name(match, 1)] = Column(match.group(3), settings)
            if "pk" in settings:
                current.primary_key = [_name(match, 1)]
        else:
            raise AssertionError(f"not DBML this reader knows: {raw}")
    assert current is None, "a table is not closed"
    return tables, refs


# --- the diagram against the catalog ------------------------------------------------------------

# The joins the streams have (docs/sp-invoices.md, "Supported Streams"): each must be drawn.
JOINS = [
    (("invoices", "id"), ("invoice_documents", "invoiceId")),
    (("invoice_documents", "invoiceId"), ("invoice_items", "invoiceId")),
    (("invoices", "id"), ("invoice_items", "invoiceId")),
    (("invoice_documents", "exportId"), ("invoice_exports", "exportId")),
    (("invoice_items", "exportId"), ("invoice_exports", "exportId")),
    (("invoices", "status"), ("invoice_attributes", "value")),
    (("invoices", "invoiceType"), ("invoice_attributes", "value")),
    (("invoices", "transactionType"), ("invoice_attributes", "value")),
]


def shown_type(spec: dict) -> str:
    """The type a schema column must have in the diagram."""
    (kind,) = [t for t in _types(spec) if t != "null"]
    if kind == "string" and spec.get("format") in ("date", "date-time"):
        return {"date": "date", "date-time": "timestamp_with_timezone"}[spec["format"]]
    return kind


def _types(spec: dict) -> list[str]:
    return spec["type"] if isinstance(spec["type"], list) else [spec["type"]]


def problems(streams: dict, text: str) -> list[str]:
    """Where the diagram and the catalog disagree."""
    tables, refs = parse_dbml(text)
    found = [f"table {t} is no stream" for t in set(tables) - set(streams)]
    found += [f"stream {s} has no table" for s in set(streams) - set(tables)]
    for name in set(tables) & set(streams):
        stream, table = streams[name], tables[name]
        properties = stream.json_schema["properties"]
        if list(table.columns) != list(properties):
            found.append(f"{name}: columns {list(table.columns)} are not {list(properties)}")
        for column in set(table.columns) & set(properties):
            spec, drawn = properties[column], table.columns[column]
            if drawn.type != shown_type(spec):
                found.append(f"{name}.{column} is {drawn.type}, not {shown_type(spec)}")
            not_null = "not null" in drawn.settings or "pk" in drawn.settings
            if not_null == ("null" in _types(spec)):
                found.append(f"{name}.{column}: not null is {not_null}")
        key = [path[0] for path in stream.source_defined_primary_key or []]
        if table.primary_key != key:
            found.append(f"{name}: primary key {table.primary_key}, not {key}")
        cursors = [c for c, drawn in table.columns.items() if "note: 'cursor'" in drawn.settings]
        if cursors != list(stream.default_cursor_field or []):
            found.append(f"{name}: cursor {cursors}, not {stream.default_cursor_field}")
    for left, _, right in refs:
        for table, column in (left, right):
            if column not in tables.get(table, Table()).columns:
                found.append(f"a join names {table}.{column}, which does not exist")
    drawn_joins = {frozenset([left, right]) for left, _, right in refs}
    found += [f"no join {a} = {b}" for a, b in JOINS if frozenset([a, b]) not in drawn_joins]
    return found


@pytest.fixture(scope="module")
def streams() -> dict:
    return {stream.name: stream for stream in erd.catalog()}


def test_the_diagram_draws_the_discovered_catalog(streams):
    assert problems(streams, ERD.read_text("utf-8")) == []


def test_the_file_is_what_make_erd_writes():
    current = ERD.read_text("utf-8")
    assert current == erd.generate(current), "erd/source.dbml is out of date: run `make erd`"


def test_the_docs_link_the_diagram():
    assert "](../erd/source.dbml)" in DOC.read_text("utf-8")


# --- the checks above can fail ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('    "govResponse" string\n', "", "invoices: columns"),
        ('"itemNumber" integer', '"itemNumber" string', "invoice_items.itemNumber is string"),
        ('"dateEnd" date [not null, note', '"dateEnd" date [note', "dateEnd: not null is False"),
        ('"id" string [pk]', '"id" string [not null]', "invoices: primary key []"),
        ('("invoiceId", "itemNumber") [pk]', '("invoiceId") [pk]', "invoice_items: primary key"),
        ("[not null, note: 'cursor']", "[not null]", "invoices: cursor []"),
        ('Ref: "invoices"."id" - "invoice_documents"."invoiceId"\n', "", "no join"),
        ('"invoices"."status" >', '"invoices"."state" >', "invoices.state, which does not exist"),
        ('Table "invoices" {', 'Table "invoice" {', "table invoice is no stream"),
    ],
)
def test_each_kind_of_drift_is_caught(streams, old, new, problem):
    text = ERD.read_text("utf-8")
    assert old in text
    found = problems(streams, text.replace(old, new, 1))
    assert any(problem in p for p in found), found


def test_a_column_added_to_a_schema_makes_the_file_out_of_date(monkeypatch, streams):
    documents = streams["invoice_documents"]
    schema = {**documents.json_schema}
    schema["properties"] = {**schema["properties"], "addedColumn": {"type": ["null", "string"]}}
    changed = dataclasses.replace(documents, json_schema=schema)
    current = ERD.read_text("utf-8")
    assert problems({**streams, "invoice_documents": changed}, current)
    monkeypatch.setattr(
        erd, "catalog", lambda: [changed if s is documents else s for s in streams.values()]
    )
    assert current != erd.generate(current)
    assert '    "addedColumn" string\n' in erd.generate(current)


def test_the_reader_refuses_what_it_does_not_know():
    with pytest.raises(AssertionError):
        parse_dbml(ERD.read_text("utf-8").replace("Table ", "Tabel ", 1))
