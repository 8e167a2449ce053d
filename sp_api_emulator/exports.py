"""Invoice exports: the invoices each one holds, its documents, and its life cycle on the clock.

An export is fixed when it is created: the ids of the invoices it holds (a snapshot of the
filtered data set), how they split into documents, and its timing. Its status is then a pure
function of emulator time, computed on each read (nothing runs in the background):

    REQUESTED --queue_seconds--> PROCESSING --processing time--> DONE (or ERROR when planned)

`invoicesDocumentIds` stays empty until DONE; an export without invoices ends DONE with none.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .clock import WallClock
from .models import api_datetime

REQUESTED, PROCESSING, DONE, ERROR = "REQUESTED", "PROCESSING", "DONE", "ERROR"
EXPORT_STATUSES = (REQUESTED, PROCESSING, DONE, ERROR)
DEFAULT_MAX_INVOICES_PER_DOCUMENT = 1000
DEFAULT_QUEUE_SECONDS = 5.0
DEFAULT_PROCESSING_SECONDS = (60.0, 120.0)
LARGE_EXPORT = 10_000  # invoices at which the processing time reaches the top of its range


@dataclass(frozen=True)
class Document:
    """One ZIP of an export: a slice of its invoices, in ascending (date, id) order."""

    document_id: str
    export_id: str
    index: int
    invoice_ids: tuple[str, ...]


@dataclass(frozen=True)
class Export:
    """An export request and everything decided at its creation (times in emulator seconds)."""

    export_id: str
    sequence: int  # creation order: listings sort and page by it
    created_at: float
    created: datetime  # wall-clock creation time, what getInvoicesExports filters on
    date_start: date
    date_end: date
    documents: tuple[Document, ...]
    started_at: float  # PROCESSING from here
    finished_at: float  # DONE or ERROR from here
    error_message: str | None = None  # set when the export is planned to fail
    query: Mapping[str, Any] = field(default_factory=dict)  # the request body as sent

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        """Return every invoice id of the export, in document order."""
        return tuple(i for document in self.documents for i in document.invoice_ids)

    def status(self, now: float) -> str:
        """Return the status at emulator time `now`."""
        if now < self.started_at:
            return REQUESTED
        if now < self.finished_at:
            return PROCESSING
        return ERROR if self.error_message is not None else DONE


@dataclass(frozen=True)
class ExportTiming:
    """How long exports wait and process, in emulator seconds."""

    queue_seconds: float = DEFAULT_QUEUE_SECONDS
    processing_seconds: tuple[float, float] = DEFAULT_PROCESSING_SECONDS

    def __post_init__(self) -> None:
        """Refuse negative or inverted ranges."""
        low, high = self.processing_seconds
        if self.queue_seconds < 0 or not 0 <= low <= high:
            raise ValueError("need queue_seconds >= 0 and 0 <= low <= high processing seconds")

    def processing(self, export_id: str, invoices: int) -> float:
        """Return an export's processing time: half by size, half a jitter fixed by its id."""
        low, high = self.processing_seconds
        jitter = hashlib.sha256(export_id.encode()).digest()[0] / 255
        size = min(1.0, invoices / LARGE_EXPORT)
        return low + (high - low) * (jitter + size) / 2


class ExportRegistry:
    """Every export created on one server and the documents they hold (thread-safe)."""

    def __init__(
        self,
        wall: WallClock,
        timing: ExportTiming | None = None,
        max_invoices_per_document: int = DEFAULT_MAX_INVOICES_PER_DOCUMENT,
    ) -> None:
        """Run exports on `wall`'s scaled clock; split them into documents of bounded size."""
        if max_invoices_per_document < 1:
            raise ValueError("max_invoices_per_document must be at least 1")
        self.wall = wall
        self.timing = timing or ExportTiming()
        self.max_invoices_per_document = max_invoices_per_document
        self._lock = threading.Lock()
        self._exports: dict[str, Export] = {}
        self._documents: dict[str, Document] = {}

    def now(self) -> float:
        """Return the emulator time exports are judged at."""
        return self.wall.clock()

    def create(
        self,
        invoice_ids: Iterable[str],
        date_start: date,
        date_end: date,
        error_message: str | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Export:
        """Register an export of these invoices; it fails at the end when `error_message` is set.

        `query` is kept as the export's request, for tests that check what a client asked for.
        """
        ids = tuple(invoice_ids)
        export_id = str(uuid.uuid4())
        size = self.max_invoices_per_document
        documents = tuple(
            Document(str(uuid.uuid4()), export_id, n, ids[start : start + size])
            for n, start in enumerate(range(0, len(ids), size))
        )
        now = self.now()
        started = now + self.timing.queue_seconds
        with self._lock:
            export = Export(
                export_id=export_id,
                sequence=len(self._exports),
                created_at=now,
                created=self.wall.at(now),
                date_start=date_start,
                date_end=date_end,
                documents=documents,
                started_at=started,
                finished_at=started + self.timing.processing(export_id, len(ids)),
                error_message=error_message,
                query=dict(query or {}),
            )
            self._exports[export_id] = export
            self._documents.update((d.document_id, d) for d in documents)
        return export

    def get(self, export_id: str) -> Export:
        """Return an export (KeyError if unknown)."""
        with self._lock:
            return self._exports[export_id]

    def all(self) -> list[Export]:
        """Return every export in creation order."""
        with self._lock:
            return list(self._exports.values())  # insertion order is creation order

    def document(self, document_id: str) -> Document:
        """Return a document of an export that is DONE (KeyError otherwise: not published yet)."""
        with self._lock:
            document = self._documents[document_id]
            export = self._exports[document.export_id]
        if export.status(self.now()) != DONE:
            raise KeyError(document_id)
        return document

    def listing(
        self,
        start: datetime,
        end: datetime,
        *,
        status: str | None = None,
        after: int = -1,
        limit: int | None = None,
        hidden: Callable[[str], bool] = lambda _export_id: False,
    ) -> list[Export]:
        """Return exports created in [start, end] (inclusive), in creation order, after a sequence.

        `status` filters on the status now; `hidden` drops exports Amazon no longer knows.
        """
        now = self.now()
        found: list[Export] = []
        for export in self.all():
            if export.sequence <= after or not start <= export.created <= end:
                continue
            if hidden(export.export_id) or (status and export.status(now) != status):
                continue
            found.append(export)
            if limit is not None and len(found) >= limit:
                break
        return found

    def to_api(self, export: Export) -> dict[str, Any]:
        """Return the Export JSON object as it stands now."""
        status = export.status(self.now())
        body: dict[str, Any] = {
            "errorMessage": export.error_message if status == ERROR else "",
            "exportId": export.export_id,
        }
        if status in (DONE, ERROR):
            body["generateExportFinishedAt"] = api_datetime(self.wall.at(export.finished_at))
        if status != REQUESTED:
            body["generateExportStartedAt"] = api_datetime(self.wall.at(export.started_at))
        body["invoicesDocumentIds"] = (
            [d.document_id for d in export.documents] if status == DONE else []
        )
        body["status"] = status
        return body
