"""The export documents as ZIP files on disk: built once each, entry by entry, then streamed.

A document may hold tens of thousands of invoices (hundreds of MB of XML), so it is never held in
memory: each entry is rendered and deflated on its own into a file in a temporary directory the
store owns, and the server streams that file in chunks. Builds run on a small thread pool, so a
getInvoicesDocument call can start one before the download asks for it; `close` removes it all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from .exports import Document

Entry = tuple[bytes, datetime]
"""One ZIP entry of an invoice: its file's bytes and the time stamped on the entry."""

BUILD_WORKERS = 2
COMPRESS_LEVEL = 1  # NF-e XML deflates almost as well at 1 as at 6, and builds stay fast


class BuildCancelled(Exception):
    """The store was closed while a ZIP was being built."""


class ZipStore:
    """Builds and caches one ZIP per document: entries `<invoice id>.xml` unless named, deflated."""

    def __init__(
        self,
        entry: Callable[[str], Entry],
        reuse_identical: bool = False,
        name: Callable[[str], str] = lambda invoice_id: f"{invoice_id}.xml",
    ) -> None:
        """Take the function that renders one invoice's file (called once per entry), and the
        one that names its entry.

        With `reuse_identical`, a document holding the same invoices as one already built
        shares its ZIP (benchmarks read the same days many times; tests that change an
        invoice between exports must leave it off).
        """
        self._entry = entry
        self._name = name
        self._reuse_identical = reuse_identical
        self._lock = threading.Lock()
        self._directory: Path | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._builds: dict[str, Future[Path]] = {}
        self._closing = threading.Event()

    def prepare(self, document: Document) -> Future[Path]:
        """Start building a document's ZIP unless it is built or being built."""
        key = (
            str(hash(tuple(document.invoice_ids)))
            if self._reuse_identical
            else document.document_id
        )
        with self._lock:
            build = self._builds.get(key)
            if build is None or (build.done() and build.exception() is not None):
                if self._directory is None:
                    self._directory = Path(tempfile.mkdtemp(prefix="sp-api-emulator-zips-"))
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(BUILD_WORKERS, "sp-api-emulator-zip")
                build = self._pool.submit(self._build, document, self._directory, self._closing)
                self._builds[key] = build
            return build

    def path(self, document: Document) -> Path:
        """Return the document's ZIP file, building it first if needed (blocks until built)."""
        return self.prepare(document).result()

    def _build(self, document: Document, directory: Path, closing: threading.Event) -> Path:
        """Write the ZIP to a part file, entry by entry, then move it into place."""
        final = directory / f"{document.document_id}.zip"
        part = final.with_suffix(".zip.part")
        with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as archive:
            for invoice_id in document.invoice_ids:
                if closing.is_set():
                    raise BuildCancelled(document.document_id)
                data, stamp = self._entry(invoice_id)
                info = zipfile.ZipInfo(self._name(invoice_id), stamp.timetuple()[:6])
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, data, compresslevel=COMPRESS_LEVEL)
        os.replace(part, final)
        return final

    def close(self) -> None:
        """Stop building, delete every file and the directory; the store can be used again."""
        with self._lock:
            self._closing.set()
            pool, directory = self._pool, self._directory
            self._pool, self._directory, self._builds = None, None, {}
            self._closing = threading.Event()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    @property
    def directory(self) -> Path | None:
        """Return the directory holding the built ZIPs (None before the first build)."""
        return self._directory
