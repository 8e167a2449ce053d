"""Invoice exports: the invoices each one holds, its documents, and its life cycle on the clock.

An export is fixed when it is created: the ids of the invoices it holds (a snapshot of the
filtered data set), how they split into documents, and its timing. Its status is then a pure
function of emulator time, computed on each read (nothing runs in the background):

    REQUESTED --queue_seconds--> PROCESSING --processing time--> DONE (or ERROR when planned)

`invoicesDocumentIds` stays empty until DONE; an export without invoices ends DONE with none.
A planned cancellation ends CANCELLED instead, and a planned odd status (say "PAUSED") is all
an export ever answers. Those are the statuses of the export_statuses="model" reading (a
cancelled export shows as ERROR there); the "reports" reading names them as the Reports API
does: IN_QUEUE, IN_PROGRESS, DONE, FATAL, CANCELLED (`status_names`).

Documents are ZIPs of NF-e files (document_body="zip") or, under document_body="xml", one NF-e
each whose document id is the invoice id.
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
CANCELLED = "CANCELLED"  # the life cycle's own end states: DONE, ERROR, CANCELLED
EXPORT_STATUSES = (REQUESTED, PROCESSING, DONE, ERROR)  # the model's ExportStatus enum
REPORTS_EXPORT_STATUSES = ("IN_QUEUE", "IN_PROGRESS", "DONE", "FATAL", "CANCELLED")
# status names per export_statuses reading, for each step of the life cycle
STATUS_NAMES: dict[str, dict[str, str]] = {
    "model": {
        REQUESTED: REQUESTED,
        PROCESSING: PROCESSING,
        DONE: DONE,
        ERROR: ERROR,
        CANCELLED: ERROR,  # the model has no CANCELLED: an ERROR saying it was cancelled
    },
    "reports": {
        REQUESTED: "IN_QUEUE",
        PROCESSING: "IN_PROGRESS",
        DONE: "DONE",
        ERROR: "FATAL",
        CANCELLED: "CANCELLED",
    },
}
CANCELLED_MESSAGE = "Export generation was cancelled"
ZIP_BODY, XML_BODY = "zip", "xml"  # the document_body readings
DEFAULT_MAX_INVOICES_PER_DOCUMENT = 1000
DEFAULT_QUEUE_SECONDS = 5.0
DEFAULT_PROCESSING_SECONDS = (60.0, 120.0)
LARGE_EXPORT = 10_000  # invoices at which the processing time reaches the top of its range


def status_names(reading: str) -> dict[str, str]:
    """Return the status names of an export_statuses reading ("model" or "reports")."""
    return STATUS_NAMES[reading]


def listed_statuses(reading: str) -> tuple[str, ...]:
    """Return the status values getInvoicesExports accepts under a reading."""
    return EXPORT_STATUSES if reading == "model" else REPORTS_EXPORT_STATUSES


@dataclass(frozen=True)
class Document:
    """One ZIP of an export: a slice of its invoices, in ascending (date, id) order.

    `body` is XML_BODY for a document of the document_body="xml" reading: one invoice, whose
    id is the document id, served as that invoice's NF-e XML.
    """

    document_id: str
    export_id: str
    index: int
    invoice_ids: tuple[str, ...]
    body: str = ZIP_BODY

    @property
    def suffix(self) -> str:
        """Return the file suffix of the document's URL: ".zip" or ".xml"."""
        return f".{self.body}"


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
    # the inclusive UTC instants whose invoices the export holds (date_start/date_end are days)
    window: tuple[datetime, datetime] | None = None
    cancelled: bool = False  # planned to end CANCELLED (ERROR under the "model" reading)
    odd_status: str | None = None  # planned to answer this status for ever, without documents

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        """Return every invoice id of the export, in document order."""
        return tuple(i for document in self.documents for i in document.invoice_ids)

    def status(self, now: float) -> str:
        """Return the life-cycle status at emulator time `now` (or the planned odd status).

        REQUESTED, PROCESSING, DONE, ERROR or CANCELLED: see `status_names` for what a reading
        of the model calls them.
        """
        if self.odd_status is not None:
            return self.odd_status
        if now < self.started_at:
            return REQUESTED
        if now < self.finished_at:
            return PROCESSING
        if self.cancelled:
            return CANCELLED
        return ERROR if self.error_message is not None else DONE

    def public_status(self, now: float, reading: str = "model") -> str:
        """Return the status as getInvoicesExport(s) answer it under an export_statuses reading."""
        status = self.status(now)
        return status if self.odd_status is not None else status_names(reading)[status]


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
        # document id -> its documents (under document_body="xml" an invoice's id names the
        # document of every export that holds it)
        self._documents: dict[str, list[Document]] = {}

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
        *,
        window: tuple[datetime, datetime] | None = None,
        cancelled: bool = False,
        odd_status: str | None = None,
        body: str = ZIP_BODY,
    ) -> Export:
        """Register an export of these invoices; it fails at the end when `error_message` is set.

        `query` is kept as the export's request, for tests that check what a client asked for;
        `window` the exact instants it covers. `cancelled` ends it CANCELLED; `odd_status` makes
        it answer that status for ever. `body=XML_BODY` makes one document per invoice, named by
        the invoice id (the document_body="xml" reading).
        """
        ids = tuple(invoice_ids)
        export_id = str(uuid.uuid4())
        if body == XML_BODY:
            documents = tuple(
                Document(invoice_id, export_id, n, (invoice_id,), XML_BODY)
                for n, invoice_id in enumerate(ids)
            )
        else:
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
                window=window,
                cancelled=cancelled,
                odd_status=odd_status,
            )
            self._exports[export_id] = export
            for document in documents:
                self._documents.setdefault(document.document_id, []).append(document)
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
        """Return a document of an export that is DONE (KeyError otherwise: not published yet).

        An "xml" document id (an invoice id) may name documents of several exports: any DONE
        one serves, they hold the same invoice.
        """
        now = self.now()
        with self._lock:
            candidates = [
                (document, self._exports[document.export_id])
                for document in self._documents.get(document_id, [])
            ]
        for document, export in candidates:
            if export.status(now) == DONE:
                return document
        raise KeyError(document_id)

    def listing(
        self,
        start: datetime,
        end: datetime,
        *,
        status: str | None = None,
        after: int = -1,
        limit: int | None = None,
        hidden: Callable[[str], bool] = lambda _export_id: False,
        reading: str = "model",
    ) -> list[Export]:
        """Return exports created in [start, end] (inclusive), in creation order, after a sequence.

        `status` filters on the status now, as named under the export_statuses `reading`;
        `hidden` drops exports Amazon no longer knows.
        """
        now = self.now()
        found: list[Export] = []
        for export in self.all():
            if export.sequence <= after or not start <= export.created <= end:
                continue
            if hidden(export.export_id) or (
                status and export.public_status(now, reading) != status
            ):
                continue
            found.append(export)
            if limit is not None and len(found) >= limit:
                break
        return found

    def to_api(self, export: Export, reading: str = "model") -> dict[str, Any]:
        """Return the Export JSON object as it stands now, statuses named as `reading` does."""
        now = self.now()
        status = export.status(now)
        if export.odd_status is not None:  # nothing but the status: no times, no documents
            return {
                "errorMessage": "",
                "exportId": export.export_id,
                "invoicesDocumentIds": [],
                "status": export.odd_status,
            }
        message = ""
        if status == ERROR:
            message = export.error_message or ""
        elif status == CANCELLED and reading == "model":
            message = CANCELLED_MESSAGE
        body: dict[str, Any] = {"errorMessage": message, "exportId": export.export_id}
        if status in (DONE, ERROR, CANCELLED):
            body["generateExportFinishedAt"] = api_datetime(self.wall.at(export.finished_at))
        if status != REQUESTED:
            body["generateExportStartedAt"] = api_datetime(self.wall.at(export.started_at))
        body["invoicesDocumentIds"] = (
            [d.document_id for d in export.documents] if status == DONE else []
        )
        body["status"] = export.public_status(now, reading)
        return body
