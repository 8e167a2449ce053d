"""erd/source.dbml: the streams as tables, generated from the discovered catalog (`make erd`).

The tables (every top-level column with its type, primary keys, the cursor) come from what
`discover` returns, run in-process, so the diagram says what the connector emits; the joins
after JOINS_MARKER are written by hand, and regenerating keeps them as they are.
unit_tests/test_erd.py fails when the committed file is not what this script writes.

    .venv/bin/python scripts/erd.py           (make erd) rewrite erd/source.dbml
    .venv/bin/python scripts/erd.py --check   exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airbyte_cdk.models import AirbyteStream  # noqa: E402
from airbyte_cdk.test.entrypoint_wrapper import discover  # noqa: E402

from source_sp_invoices.source import SourceSpInvoices  # noqa: E402

ERD = ROOT / "erd" / "source.dbml"
CONFIG = ROOT / "integration_tests" / "sample_config.json"  # discover reads no data with it
JOINS_MARKER = "// --- Joins: written by hand; `make erd` keeps everything from this line on ---"
HEADER = """\
// source-sp-invoices: its five streams as tables, and how they join (DBML, as dbdiagram.io and
// dbml-cli read it). The tables are generated from the discovered catalog by `make erd`
// (scripts/erd.py): every top-level column with its JSON type (format date: date, date-time:
// timestamp_with_timezone), [pk] on the primary key, 'cursor' on the cursor field.
// unit_tests/test_erd.py holds this file to the catalog.
"""

# JSON schema format -> the column type shown (Airbyte's names for them).
FORMATS = {"date": "date", "date-time": "timestamp_with_timezone"}


def catalog() -> list[AirbyteStream]:
    """The streams as `discover` announces them, run in-process."""
    logging.disable(logging.INFO)  # the CDK's start-up lines are not the catalog
    try:
        output = discover(SourceSpInvoices(), json.loads(CONFIG.read_text("utf-8")))
    finally:
        logging.disable(logging.NOTSET)
    return list(output.catalog.catalog.streams)


def column_type(spec: dict[str, Any]) -> str:
    """The one non-null JSON type of a column, dates and date-times named as such."""
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    kinds = [t for t in types if t != "null"]
    if len(kinds) != 1:
        raise ValueError(f"a column of one type is expected, not {types}")
    return FORMATS.get(spec.get("format", ""), kinds[0]) if kinds[0] == "string" else kinds[0]


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def table(stream: AirbyteStream) -> str:
    """One stream as a DBML table."""
    key = [path[0] for path in stream.source_defined_primary_key or []]
    cursor = (stream.default_cursor_field or [None])[0]
    modes = ", ".join(mode.value for mode in stream.supported_sync_modes)
    lines = [f'Table "{stream.name}" {{']
    for name, spec in stream.json_schema["properties"].items():
        settings = []
        if key == [name]:
            settings.append("pk")
        elif "null" not in (spec["type"] if isinstance(spec["type"], list) else [spec["type"]]):
            settings.append("not null")
        if name == cursor:
            settings.append("note: 'cursor'")
        shown = f" [{', '.join(settings)}]" if settings else ""
        lines.append(f'    "{name}" {column_type(spec)}{shown}')
    if len(key) > 1:
        columns = ", ".join(f'"{name}"' for name in key)
        lines += ["", "    indexes {", f"        ({columns}) [pk]", "    }"]
    note = f"{stream.json_schema.get('description', '').strip()} Sync modes: {modes}."
    lines += ["", f"    Note: {_quote(note.strip())}", "}"]
    return "\n".join(lines)


def generate(current: str) -> str:
    """The file as `make erd` writes it: header, tables, then the hand-written joins of
    `current` (from JOINS_MARKER on) unchanged."""
    if JOINS_MARKER not in current:
        raise ValueError(f"{ERD.relative_to(ROOT)} lost its line {JOINS_MARKER!r}")
    joins = current[current.index(JOINS_MARKER) :]
    tables = "\n\n".join(table(stream) for stream in catalog())
    return f"{HEADER}\n{tables}\n\n{joins}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is outdated")
    args = parser.parse_args()
    current = ERD.read_text("utf-8")
    wanted = generate(current)
    if args.check:
        if wanted != current:
            print(f"{ERD.relative_to(ROOT)} is out of date: run make erd", file=sys.stderr)
            return 1
        return 0
    ERD.write_text(wanted, "utf-8")
    print(f"wrote {ERD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
