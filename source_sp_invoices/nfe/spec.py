"""The field-spec language: how a group's children become columns of a record, in one pass.

Parsing is one walk over the tree: each group maps its children's tags to (kind, column) in a
precompiled dict holding every tag with and without the NF-e namespace, so prefixed, default
and unqualified documents read alike, without XPath.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from source_sp_invoices.nfe.convert import (
    MAX_FLOAT_DIGITS,
    NfeError,
    decimal_text,
    integer,
    number,
    reason,
    where,
)

NAMESPACE = "http://www.portalfiscal.inf.br/nfe"  # ignore-https-check: a name, never fetched
NS_PREFIX = "{" + NAMESPACE + "}"  # a qualified tag is NS_PREFIX + its local name

# A spec maps a child's tag to (kind, column, payload):
#   TEXT     the text as it is (strings, codes, dates)
#   NUMBER   the text as an exact float (see convert.number)
#   CONVERT  payload(text): decimal strings, integers
#   GROUP    the children are read with the payload spec into the same record
#   HANDLER  payload(element, record): repeated groups, the ICMS group's name
# Every spec holds each tag twice: in the NF-e namespace and without one (a file whose prefixed
# root declares the namespace but whose children are unqualified still reads).

TEXT, NUMBER, CONVERT, GROUP, HANDLER = range(5)
DECIMAL_TEXT: Callable[[str], str] = decimal_text
INTEGER: Callable[[str], int] = integer
Entry = tuple[int, str | None, Any]
Spec = dict[Any, Entry]
_DIGITS = "0123456789."


def spec(fields: Mapping[str, Any]) -> Spec:
    """Build a spec from {tag: column | (column, NUMBER | converter) | Spec | handler}."""
    built: Spec = {}
    for tag, value in fields.items():
        if isinstance(value, str):
            entry: Entry = (TEXT, value, None)
        elif isinstance(value, tuple):
            column, how = value
            entry = (NUMBER, column, None) if how == NUMBER else (CONVERT, column, how)
        elif isinstance(value, dict):
            entry = (GROUP, None, value)
        else:
            entry = (HANDLER, None, value)
        built[NS_PREFIX + tag] = entry
        built[tag] = entry
    return built


def columns(spec: Spec) -> list[str]:
    """Columns a spec fills, in table order (handlers' columns are listed separately)."""
    names: list[str] = []
    for tag, (kind, column, payload) in spec.items():
        if tag.startswith("{"):
            continue
        if column is not None:
            names.append(column)
        elif kind == GROUP:
            names.extend(c for c in columns(payload) if c not in names)
    return names


def fill(element: Any, spec: Spec, record: dict[str, Any]) -> None:
    """Read element's children into record with spec (one pass; unknown tags skipped)."""
    for child in element:
        entry = spec.get(child.tag)
        if entry is None:
            continue
        kind, column, payload = entry
        if kind == TEXT:
            text = child.text
            if text is not None:
                record[column] = text
        elif kind == NUMBER:
            text = child.text
            if text is None:
                continue
            try:
                # Fast path: at most 15 characters, all digits or dots; float() rejects the rest.
                if len(text) <= MAX_FLOAT_DIGITS and not text.strip(_DIGITS):
                    record[column] = float(text)
                else:
                    record[column] = number(text)
            except ValueError as error:
                raise NfeError(f"{where(child)}: {reason(error, text)}") from None
        elif kind == GROUP:
            fill(child, payload, record)
        elif kind == CONVERT:
            text = child.text
            if text is not None:
                try:
                    record[column] = payload(text)
                except ValueError as error:
                    raise NfeError(f"{where(child)}: {reason(error, text)}") from None
        else:
            payload(child, record)


def append(record: dict[str, Any], column: str, value: Any) -> None:
    """Add value to record's array column (null until its first value)."""
    values = record[column]
    if values is None:
        record[column] = [value]
    else:
        values.append(value)


def repeated(
    column: str, spec: Spec, template: dict[str, Any]
) -> Callable[[Any, dict[str, Any]], None]:
    """A handler that reads each occurrence of a group as one object of an array column."""

    def handle(element: Any, record: dict[str, Any]) -> None:
        value = dict(template)
        fill(element, spec, value)
        append(record, column, value)

    return handle
