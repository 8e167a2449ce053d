"""ZIP entries: decoded whatever their encoding, bounded in size, corrupt files detected."""

from __future__ import annotations

import io
import zipfile

import pytest

from source_sp_invoices.zip_reader import (
    CorruptDocument,
    InvalidEntry,
    decode_xml,
    invoice_id_of,
    read_entries,
)

TEXT = '<?xml version="1.0" encoding="{enc}"?><NFe><xNome>João Araújo Conceição</xNome></NFe>'


def zip_of(entries: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    buffer.seek(0)
    return buffer


@pytest.mark.parametrize(
    "data",
    [
        TEXT.format(enc="UTF-8").encode("utf-8"),
        b"\xef\xbb\xbf" + TEXT.format(enc="UTF-8").encode("utf-8"),
        TEXT.format(enc="ISO-8859-1").encode("latin-1"),
        TEXT.format(enc="windows-1252").encode("cp1252"),
        TEXT.format(enc="UTF-16").encode("utf-16"),  # with its BOM
        TEXT.replace(' encoding="{enc}"', "").encode("utf-8"),  # no declaration: UTF-8
    ],
)
def test_text_is_decoded_from_its_bom_or_declared_encoding(data):
    assert "João Araújo Conceição" in decode_xml(data)
    assert decode_xml(data).lstrip("\ufeff").startswith("<?xml")


def test_a_wrong_encoding_is_reported():
    with pytest.raises(InvalidEntry, match="is not valid UTF-8: invalid continuation byte"):
        decode_xml(TEXT.format(enc="UTF-8").encode("latin-1"))
    with pytest.raises(InvalidEntry, match="unknown encoding 'klingon'"):
        decode_xml(TEXT.format(enc="klingon").encode())


def test_the_invoice_id_is_the_file_name_without_xml():
    assert invoice_id_of("ad5b9dcd-6981.xml") == "ad5b9dcd-6981"
    assert invoice_id_of("folder/ad5b9dcd-6981.XML") == "ad5b9dcd-6981"


def test_entries_are_read_in_order_and_skipped_by_name():
    archive = zip_of({"a.xml": b"<a/>", "b.xml": b"<b/>", "c.xml": b"<c/>"})
    entries = list(read_entries(archive, skip=frozenset({"b.xml"})))
    assert [(e.file_name, e.invoice_id, e.xml) for e in entries] == [
        ("a.xml", "a", "<a/>"),
        ("c.xml", "c", "<c/>"),
    ]


def test_a_truncated_zip_is_a_corrupt_document():
    whole = zip_of({"a.xml": b"<a/>" * 1000}).getvalue()
    with pytest.raises(CorruptDocument):
        list(read_entries(io.BytesIO(whole[: len(whole) // 2])))


def test_a_damaged_entry_is_a_corrupt_document():
    data = bytearray(zip_of({"a.xml": b"<invoice>" + b"x" * 5000 + b"</invoice>"}).getvalue())
    data[60:70] = b"\x00" * 10  # inside the compressed data of the first entry
    with pytest.raises(CorruptDocument, match="a.xml"):
        list(read_entries(io.BytesIO(bytes(data))))


def test_an_entry_larger_than_the_bound_is_refused_before_it_is_inflated():
    archive = zip_of({"bomb.xml": b"\x00" * 10_000})
    with pytest.raises(InvalidEntry, match="bomb.xml would decompress to 10000 bytes"):
        list(read_entries(archive, max_entry_bytes=1000))


def test_stored_entries_and_zip64_and_prefixed_archives_read_the_same():
    names = {f"{n}.xml": f"<NFe>{n} ã</NFe>".encode() for n in range(3)}
    stored = io.BytesIO()
    with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
        for name, data in names.items():
            archive.writestr(name, data)
    zip64 = io.BytesIO()
    with zipfile.ZipFile(zip64, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in names.items():
            with archive.open(name, "w", force_zip64=True) as entry:
                entry.write(data)
    prefixed = io.BytesIO(b"#!/bin/sh\n" + zip_of(names).getvalue())  # offsets no longer add up
    expected = [(n, d.decode()) for n, d in names.items()]
    for file in (stored, zip64, prefixed):
        file.seek(0)
        assert [(e.file_name, e.xml) for e in read_entries(file)] == expected


def test_a_cut_central_directory_is_a_corrupt_document():
    whole = zip_of({"a.xml": b"<a/>", "b.xml": b"<b/>"}).getvalue()
    with pytest.raises(CorruptDocument):
        list(read_entries(io.BytesIO(whole[:-30])))
