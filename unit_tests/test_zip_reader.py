"""ZIP entries: decoded whatever their encoding, bounded in size, corrupt files detected."""

from __future__ import annotations

import io
import threading
import zipfile

import pytest

from source_sp_invoices.export_pipeline.downloads import BackgroundDownload
from source_sp_invoices.export_pipeline.xml_text import InvalidEntry, decode_xml, invoice_id_of
from source_sp_invoices.export_pipeline.zip_reader import (
    CorruptDocument,
    read_entries,
    stream_entries,
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


# Reading while the document downloads: the same entries, whatever the ZIP's layout.


def chunked(data: bytes, size: int = 7) -> BackgroundDownload:
    """A download that arrives a few bytes at a time, as a slow network would give it."""
    return BackgroundDownload(data[i : i + size] for i in range(0, len(data), size))


class Unseekable(io.RawIOBase):
    """A write-only stream: zipfile then puts sizes and CRC-32 after each entry's data, as
    Java's ZipOutputStream (and many export services) do."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def]
        self.data += b
        return len(b)


def described_zip(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    sink = Unseekable()
    with zipfile.ZipFile(sink, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return bytes(sink.data)


def stored_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


NAMES = {f"dir/{n}.xml": f"<NFe>{n} ã {'x' * (n * 997 % 20000)}</NFe>".encode() for n in range(40)}


@pytest.mark.parametrize(
    "layout", ["deflated", "stored", "data descriptors", "prefixed", "with a directory entry"]
)
def test_a_zip_read_while_it_downloads_gives_every_entry_once(layout: str) -> None:
    data = {
        "deflated": zip_of(NAMES).getvalue(),
        "stored": stored_zip(NAMES),
        "data descriptors": described_zip(NAMES),
        "prefixed": b"#!/bin/sh\n" + zip_of(NAMES).getvalue(),
        "with a directory entry": zip_of({"dir/": b"", **NAMES}).getvalue(),
    }[layout]
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    with chunked(data, 1000) as source:
        entries = [(e.file_name, e.xml) for e in stream_entries(source)]
    assert entries == [(n, d.decode()) for n, d in NAMES.items()]


def test_a_stored_zip_with_data_descriptors_is_read_from_its_directory() -> None:
    # Stored data cannot say where it ends: the whole file's central directory does.
    data = described_zip(NAMES, zipfile.ZIP_STORED)
    with chunked(data, 4096) as source:
        entries = [e.file_name for e in stream_entries(source)]
    assert entries == list(NAMES)


@pytest.mark.parametrize("make", [lambda e: zip_of(e).getvalue(), described_zip])
def test_entries_skipped_by_name_are_not_read_again(make) -> None:  # type: ignore[no-untyped-def]
    skip = frozenset(list(NAMES)[:25])
    with chunked(make(NAMES), 512) as source:
        entries = [e.file_name for e in stream_entries(source, skip=skip)]
    assert entries == list(NAMES)[25:]


@pytest.mark.parametrize("make", [lambda e: zip_of(e).getvalue(), described_zip])
def test_a_download_cut_short_yields_what_arrived_then_fails(make) -> None:  # type: ignore[no-untyped-def]
    whole = make(NAMES)
    read: list[str] = []
    with pytest.raises(CorruptDocument), chunked(whole[: len(whole) // 2], 300) as source:
        for entry in stream_entries(source):
            read.append(entry.file_name)
    assert 0 < len(read) < len(NAMES)
    assert read == list(NAMES)[: len(read)]  # in order, and each one complete


def test_a_download_that_breaks_off_is_a_corrupt_document_naming_the_break() -> None:
    whole = zip_of(NAMES).getvalue()

    def body():  # type: ignore[no-untyped-def]
        yield whole[:5000]
        raise ConnectionResetError("peer reset")

    read: list[str] = []
    source = BackgroundDownload(body())
    with pytest.raises(CorruptDocument, match="broke off after 5000 bytes"), source:
        for entry in stream_entries(source):
            read.append(entry.file_name)
    assert read and read == list(NAMES)[: len(read)]


def test_a_central_directory_that_disagrees_reads_from_the_directory() -> None:
    # Two archives glued together: the local headers of the first are followed by the second,
    # whose directory (the only one found) lists other offsets: the file's directory wins.
    first, second = zip_of({"a.xml": b"<a/>"}).getvalue(), zip_of(NAMES).getvalue()
    glued = first[: first.index(b"PK\x01\x02")] + second
    with chunked(glued, 2048) as source:
        names = [e.file_name for e in stream_entries(source)]
    assert names[0] == "a.xml" and names[1:] == list(NAMES)


@pytest.mark.parametrize("make", [lambda e: zip_of(e).getvalue(), described_zip])
def test_a_bomb_read_while_it_downloads_is_refused(make) -> None:  # type: ignore[no-untyped-def]
    with (
        pytest.raises(InvalidEntry, match="bomb.xml"),
        chunked(make({"bomb.xml": b"\0" * 100_000}), 4096) as source,
    ):
        list(stream_entries(source, max_entry_bytes=10_000))


def test_a_damaged_entry_read_while_it_downloads_is_a_corrupt_document() -> None:
    data = bytearray(zip_of({"a.xml": b"<invoice>" + b"x" * 5000 + b"</invoice>"}).getvalue())
    data[60:70] = b"\x00" * 10
    with pytest.raises(CorruptDocument), chunked(bytes(data), 100) as source:
        list(stream_entries(source))


def test_a_download_stopped_early_releases_its_file() -> None:
    started = threading.Event()

    def endless():  # type: ignore[no-untyped-def]
        while True:
            started.set()
            yield b"PK\x03\x04" + b"\0" * 1000

    download = BackgroundDownload(endless())
    started.wait(5)
    download.close()
    download._thread.join(5)
    assert not download._thread.is_alive() and download._file.closed


def test_an_entry_longer_than_its_headers_say_is_a_corrupt_document() -> None:
    # A header that understates the size must not make the inflater write past it.
    data = bytearray(zip_of({"a.xml": b"<a>" + b"x" * 5000 + b"</a>"}).getvalue())
    local_size, central = 22, data.index(b"PK\x01\x02") + 24  # uncompressed size fields
    data[local_size : local_size + 4] = (100).to_bytes(4, "little")
    data[central : central + 4] = (100).to_bytes(4, "little")
    with pytest.raises(CorruptDocument, match="damaged"):
        list(read_entries(io.BytesIO(bytes(data))))
    with pytest.raises(CorruptDocument, match="damaged"), chunked(bytes(data), 512) as source:
        list(stream_entries(source))
