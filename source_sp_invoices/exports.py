"""The export pipeline: windows of days -> exports -> documents -> invoice XML entries.

Each window of whole UTC days goes through one export job:

    NEW --create--> REQUESTED/PROCESSING --poll--> DONE --documents--> (window complete)
                          |                  |
                          +------ ERROR -----+--> NEW again (bounded), then the sync fails

Jobs live in a table keyed by window, not in the position of a loop, so several exports can be in
flight while the earliest window is downloaded, and a killed sync resumes from the export ids its
state recorded. The network, the clock and the ZIP reader are passed in, so tests drive every
transition without sleeping.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.downloads import DocumentSource
from source_sp_invoices.zip_reader import CorruptDocument, InvalidEntry, XmlEntry, stream_entries

NEW, REQUESTED, PROCESSING, DONE, ERROR = "NEW", "REQUESTED", "PROCESSING", "DONE", "ERROR"


@dataclass(frozen=True, order=True)
class Window:
    """A range of whole UTC days, both ends included, as createInvoicesExport takes them."""

    first: date
    last: date

    @property
    def key(self) -> str:
        return f"{self.first.isoformat()}/{self.last.isoformat()}"

    @classmethod
    def from_key(cls, key: str) -> Window:
        first, last = key.split("/")
        return cls(date.fromisoformat(first), date.fromisoformat(last))

    def __str__(self) -> str:
        return f"{self.first}..{self.last}"


def day_windows(first: date, last: date, days: int) -> list[Window]:
    """Consecutive windows of `days` days covering first..last (inclusive)."""
    windows = []
    while first <= last:
        end = min(first + timedelta(days=days - 1), last)
        windows.append(Window(first, end))
        first = end + timedelta(days=1)
    return windows


@dataclass
class Job:
    """Where one window's export is; only export_id and documents_done outlive a sync."""

    window: Window
    export_id: str | None = None
    status: str = NEW
    attempts: int = 0  # exports created for this window in this sync
    document_ids: list[str] = field(default_factory=list)
    documents_done: list[str] = field(default_factory=list)
    next_poll_at: float = 0.0
    poll_intervals: int = settings.EXPORT_POLL_FIRST_INTERVALS  # of getInvoicesExport's rate
    polls: int = 0

    def saved(self) -> dict[str, Any]:
        return {"exportId": self.export_id, "documentsDone": list(self.documents_done)}


class ExportsApi(Protocol):
    """The four calls the pipeline makes; the stream implements them over the CDK's HTTP client."""

    def create_export(self, window: Window) -> str: ...

    def get_export(self, export_id: str) -> Mapping[str, Any] | None:
        """The Export object, or None when Amazon no longer knows the id."""

    def download_document(self, document_id: str, keep: Path | None = None) -> DocumentSource:
        """Get a fresh URL for the document and start downloading it at once (to `keep`, if
        given, where the file stays after the source is closed)."""


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ExportFailed(AirbyteTracedException):
    """A window's export kept ending in ERROR: the sync stops rather than skip the window."""

    def __init__(self, window: Window, export_id: str | None, reason: str) -> None:
        message = (
            f"Amazon could not export the invoices of {window} "
            f"({settings.EXPORT_ATTEMPTS} attempts, last export {export_id}): {reason}. "
            "The window was not skipped: the next sync tries it again."
        )
        super().__init__(message=message, internal_message=message)


class DocumentUnreadable(AirbyteTracedException):
    """A document stayed unreadable after fresh downloads."""

    def __init__(self, document_id: str, window: Window, reason: str) -> None:
        message = (
            f"Document {document_id} of {window} could not be read after "
            f"{settings.DOWNLOAD_ATTEMPTS} downloads: {reason}"
        )
        super().__init__(
            message=message, internal_message=message, failure_type=FailureType.transient_error
        )


class UnusableFile(AirbyteTracedException):
    """A file of a document that no download can fix (over the size bound, undecodable)."""

    def __init__(self, document_id: str, export_id: str, window: Window, reason: str) -> None:
        message = (
            f"Document {document_id} of {window} (export {export_id}) holds a file the connector "
            f"refuses: {reason}. The window was not skipped: the cursor stays before it. Contact "
            "Amazon's Selling Partner support with the document ID."
        )
        super().__init__(
            message=message, internal_message=message, failure_type=FailureType.system_error
        )


class Entry(NamedTuple):
    """An invoice XML read from a document, with where it came from (one per invoice)."""

    window: Window
    export_id: str
    document_id: str
    xml: XmlEntry


CHECKPOINT = object()  # yielded when the pending exports changed and should be saved


class ExportPipeline:
    """Plans the windows of a sync, drives their jobs, and completes them in order.

    Windows are planned as exports are created: a window grows (doubling, up to `max_days`)
    while exports come back as one document, since the one-call-a-minute limit counts
    documents, and shrinks when an export is split into several.
    """

    def __init__(
        self,
        api: ExportsApi,
        first_day: date,
        last_day: date,
        saved: Mapping[str, Mapping[str, Any]],
        logger: logging.Logger,
        window_days: int = 1,
        max_days: int = 1,
        ahead: int = settings.DEFAULT_EXPORTS_AHEAD,
        clock: Clock | None = None,
        document_slot_wait: Callable[[], float] = lambda: 0.0,
        poll_unit: Callable[[], float] = lambda: 1 / settings.USAGE_PLANS["getInvoicesExport"].rate,
        known_window: Callable[[date], Window | None] = lambda day: None,
    ) -> None:
        self._api = api
        self._clock = clock or SystemClock()
        self._logger = logger
        self._ahead = max(1, ahead)
        self._slot_wait = document_slot_wait
        self._poll_unit = poll_unit  # seconds between two calls of getInvoicesExport
        self._known_window = known_window  # a window another stream already used this sync
        self._max_days = max(1, max_days)
        self.window_days = min(max(1, window_days), self._max_days)
        self._ceiling = self._max_days  # lowered when an export comes back split
        self.last_day = last_day
        self._next_day = first_day
        self._jobs: dict[str, Job] = {}
        for key in sorted(saved):  # exports in flight when the last sync stopped, in order
            window = Window.from_key(key)
            if window.first != self._next_day or window.last > last_day:
                logger.info(f"Not resuming the saved export of {window}: outside this sync's plan.")
                continue
            job = Job(window, export_id=saved[key]["exportId"], status=REQUESTED)
            job.documents_done = list(saved[key].get("documentsDone") or [])
            self._jobs[key] = job
            self._next_day = window.last + timedelta(days=1)

    def windows(self) -> Iterator[Window]:
        """The windows of the sync, in order, each planned when it is needed."""
        while self._jobs or self._plan():
            yield next(iter(self._jobs.values())).window

    def pending(self) -> dict[str, dict[str, Any]]:
        """The exports created and not yet fully read, for the stream's state."""
        return {key: job.saved() for key, job in self._jobs.items() if job.export_id}

    def read_window(self, window: Window) -> Iterator[Entry | object]:
        """Complete one window: create, poll, download; yield its entries and checkpoints."""
        job = self._jobs[window.key]
        while job.status != DONE:
            yield from self._advance(window)
            if job.status != DONE:
                self._wait(self._next_poll())
        for document_id in job.document_ids:
            if document_id in job.documents_done:
                continue
            # Amazon allows one document a minute: keep the other exports moving meanwhile.
            while (slot := self._slot_wait()) > 0:
                yield from self._advance(window)
                self._wait(min(slot, self._next_poll()))
            yield from self._read_document(job, document_id)
            job.documents_done.append(document_id)
            yield CHECKPOINT
        del self._jobs[window.key]

    def _advance(self, window: Window) -> Iterator[object]:
        """Create what may be created and poll what is due; a checkpoint if exports changed."""
        if self._create_ahead(window) | self._poll_due():
            yield CHECKPOINT

    def _plan(self) -> bool:
        """Add a NEW job for the next window of the current size; False when no day is left."""
        if self._next_day > self.last_day:
            return False
        last = min(self._next_day + timedelta(days=self.window_days - 1), self.last_day)
        known = self._known_window(self._next_day)
        window = known if known and known.last <= self.last_day else Window(self._next_day, last)
        self._jobs[window.key] = Job(window)
        self._next_day = window.last + timedelta(days=1)
        return True

    def _learn(self, job: Job) -> None:
        """Size the windows not yet planned from how many documents this export needed."""
        days = (job.window.last - job.window.first).days + 1
        documents = len(job.document_ids)
        if documents > 1:  # split: never grow back to a size that splits
            self._ceiling = max(1, days // documents)
            size = min(self.window_days, self._ceiling)
        elif days >= self.window_days:
            size = min(self.window_days * 2, self._max_days, self._ceiling)
        else:
            return
        if size != self.window_days:
            self._logger.info(
                f"Window {job.window} needed {documents} document(s): next windows span "
                f"{size} day(s)."
            )
            self.window_days = size

    def _next_poll(self) -> float:
        """Seconds until the next poll is due (or a long while if nothing is in flight)."""
        due = min((job.next_poll_at for job in self._in_flight()), default=None)
        if due is None:
            return settings.EXPORT_POLL_MAX_INTERVALS * self._poll_unit()
        return max(0.0, due - self._clock.now())

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._clock.sleep(seconds)

    def _in_flight(self) -> list[Job]:
        return [job for job in self._jobs.values() if job.status in (REQUESTED, PROCESSING)]

    def _create_ahead(self, window: Window) -> bool:
        """Create exports in window order, this window's first, up to `ahead` not yet read."""
        created = False
        outstanding = sum(1 for job in self._jobs.values() if job.export_id)
        for job in list(self._jobs.values()):
            if job.status == NEW and (job.window == window or outstanding < self._ahead):
                self._create(job)
                outstanding += 1
                created = True
        while outstanding < self._ahead and self._plan():
            self._create(list(self._jobs.values())[-1])
            outstanding += 1
            created = True
        return created

    def _create(self, job: Job) -> None:
        job.export_id = self._api.create_export(job.window)
        job.attempts += 1
        job.status = REQUESTED
        job.document_ids, job.documents_done, job.polls = [], [], 0
        # The first poll goes at once: it costs one call of a generous plan and tells the rate
        # Amazon applies to getInvoicesExport, which paces the polls that follow.
        job.poll_intervals = settings.EXPORT_POLL_FIRST_INTERVALS // 2
        job.next_poll_at = self._clock.now()
        self._logger.info(
            f"Window {job.window}: created export {job.export_id} (attempt {job.attempts})."
        )

    def _poll_due(self) -> bool:
        """Poll every in-flight export whose time has come; True if one had to be re-created."""
        recreated = False
        now = self._clock.now()
        for job in self._in_flight():
            if job.next_poll_at > now:
                continue
            assert job.export_id is not None
            export = self._api.get_export(job.export_id)
            job.polls += 1
            status = (export or {}).get("status", "GONE")
            self._logger.info(
                f"Window {job.window}: export {job.export_id} is {status} (poll {job.polls})."
            )
            if status == DONE:
                job.status = DONE
                job.document_ids = list(export.get("invoicesDocumentIds") or [])  # type: ignore[union-attr]
                self._learn(job)
            elif status in (REQUESTED, PROCESSING):
                job.status = status
                job.poll_intervals = min(job.poll_intervals * 2, settings.EXPORT_POLL_MAX_INTERVALS)
                job.next_poll_at = self._clock.now() + job.poll_intervals * self._poll_unit()
            else:  # ERROR, gone, or a status this connector does not know
                reason = (export or {}).get("errorMessage") or f"export {status}"
                if job.attempts >= settings.EXPORT_ATTEMPTS:
                    raise ExportFailed(job.window, job.export_id, reason)
                self._logger.warning(
                    f"Window {job.window}: export {job.export_id} ended in {status} ({reason}); "
                    "creating it again."
                )
                self._create(job)
                recreated = True
        return recreated

    def _read_document(self, job: Job, document_id: str) -> Iterator[Entry]:
        """Read a document while it downloads; download it again when it breaks off or is
        unreadable, skipping the entries already read."""
        emitted: set[str] = set()  # entries already read from an earlier, broken download
        reason = ""
        for attempt in range(1, settings.DOWNLOAD_ATTEMPTS + 1):
            started = self._clock.now()
            try:
                with self._api.download_document(document_id) as source:
                    for xml in stream_entries(source, skip=frozenset(emitted)):
                        emitted.add(xml.file_name)
                        yield Entry(job.window, job.export_id or "", document_id, xml)
                    size = source.size
            except InvalidEntry as error:
                raise UnusableFile(
                    document_id, job.export_id or "", job.window, str(error)
                ) from None
            except CorruptDocument as error:
                reason = str(error)
                self._logger.warning(
                    f"Window {job.window}: document {document_id} is unreadable ({reason}); "
                    f"downloading it again with a fresh URL (attempt {attempt})."
                )
                continue
            seconds = self._clock.now() - started
            self._logger.info(
                f"Window {job.window}: document {document_id}: {len(emitted)} invoice(s), "
                f"{size / 2**20:.1f} MB, downloaded and read in {seconds:.1f} s."
            )
            return
        raise DocumentUnreadable(document_id, job.window, reason)
