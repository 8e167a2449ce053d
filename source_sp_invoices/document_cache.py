"""One sync's exports and documents, shared by invoice_documents and invoice_items.

The CDK reads streams one after the other. When both streams are selected, the second one
reuses the windows, exports and downloaded ZIP files of the first, so each document is
fetched from Amazon once per sync (getInvoicesDocument allows one call a minute). The ZIP
files are kept on disk, in a temporary directory removed when the sync ends, and only while
both streams are selected.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

from source_sp_invoices.downloads import DocumentSource, FileSource
from source_sp_invoices.exports import DONE, ExportsApi, Window


class DocumentCache:
    """What the first stream learnt: windows, export ids, document ids and ZIP files."""

    def __init__(self) -> None:
        self.share = False  # set when both document streams are in the catalog
        self._windows: dict[date, Window] = {}
        self._exports: dict[Window, str] = {}
        self._documents: dict[str, list[str]] = {}
        self._files: dict[str, Path] = {}
        self._directory: tempfile.TemporaryDirectory[str] | None = None
        self._saved = 0

    def window_starting(self, day: date) -> Window | None:
        return self._windows.get(day) if self.share else None

    def wrap(self, api: ExportsApi) -> ExportsApi:
        """The API as the streams see it: answered from this cache when it can be."""
        return _SharedExports(api, self)

    def _file_for(self, document_id: str) -> Path:
        if self._directory is None:
            self._directory = tempfile.TemporaryDirectory(prefix="sp-invoices-documents-")
        self._saved += 1  # not len(self._files): files read once are dropped from it
        return Path(self._directory.name) / f"{self._saved}.zip"


class _SharedExports:
    def __init__(self, api: ExportsApi, cache: DocumentCache) -> None:
        self._api = api
        self._cache = cache

    def create_export(self, window: Window) -> str:
        cache = self._cache
        if cache.share and window in cache._exports:
            return cache._exports[window]
        export_id = self._api.create_export(window)
        cache._windows[window.first] = window
        cache._exports[window] = export_id
        return export_id

    def get_export(self, export_id: str) -> Mapping[str, Any] | None:
        cache = self._cache
        if cache.share and export_id in cache._documents:
            documents = cache._documents[export_id]
            return {"exportId": export_id, "status": DONE, "invoicesDocumentIds": documents}
        export = self._api.get_export(export_id)
        if export and export.get("status") == DONE:
            cache._documents[export_id] = list(export.get("invoicesDocumentIds") or [])
        return export

    def download_document(self, document_id: str, keep: Path | None = None) -> DocumentSource:
        cache = self._cache
        cached = cache._files.pop(document_id, None) if cache.share else None
        if cached is not None:  # read once more at most: a broken copy is fetched again
            return FileSource(cached)
        if not cache.share:
            return self._api.download_document(document_id, keep)
        path = cache._file_for(document_id)
        source = self._api.download_document(document_id, path)
        cache._files[document_id] = path  # complete once the first stream has read it
        return source
