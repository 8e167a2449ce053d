"""NF-e files as text: the bytes of one file decoded as XML says (a byte-order mark wins, then
the declared encoding, then UTF-8), and the invoice id its file name gives."""

from __future__ import annotations

import codecs
import re


class InvalidEntry(Exception):
    """One entry cannot be used (too large, not decodable); the message names it."""


_DECLARED_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

_UTF8_DECLARATIONS = (
    b'<?xml version="1.0" encoding="UTF-8"?>',
    b'<?xml version="1.0" encoding="utf-8"?>',
)


def decode_xml(data: bytes) -> str:
    """XML bytes as text: a BOM wins, then the declared encoding, then UTF-8."""
    if data.startswith(_UTF8_DECLARATIONS):  # nearly every NF-e: skip the search below
        return _decode(data, "UTF-8")
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec)
    declared = _DECLARED_ENCODING.match(data[:200])
    return _decode(data, declared.group(1).decode("ascii") if declared else "utf-8")


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except LookupError:
        raise InvalidEntry(f"declares the unknown encoding {encoding!r}") from None
    except UnicodeDecodeError as error:
        raise InvalidEntry(
            f"is not valid {encoding}: {error.reason} at byte {error.start}"
        ) from None


def invoice_id_of(file_name: str) -> str:
    """The invoice id is the entry's file name without its directory and .xml extension."""
    base = file_name.rsplit("/", 1)[-1]
    return base[:-4] if base.lower().endswith(".xml") else base


def looks_like_xml(head: bytes) -> bool:
    """Whether a file's first bytes start an XML document (a byte-order mark, or "<" after
    blanks), for deciding a body's kind by its bytes."""
    return any(head.startswith(bom) for bom, _ in _BOMS) or head.lstrip().startswith(b"<")
