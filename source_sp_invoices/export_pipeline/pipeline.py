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
from typing import Any, NamedTuple, Protocol

from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.export_pipeline.downloads import DocumentSource
from source_sp_invoices.export_pipeline.planner import WindowPlanner
from source_sp_invoices.export_pipeline.windows import Window
from source_sp_invoices.export_pipeline.xml_text import InvalidEntry
from source_sp_invoices.export_pipeline.zip_reader import (
    ZIP,
    CorruptDocument,
    XmlEntry,
    body_kind,
    single_xml_entry,
    stream_entries,
)

NEW, REQUESTED, PROCESSING, DONE, ERROR = "NEW", "REQUESTED", "PROCESSING", "DONE", "ERROR"
# The model's enum is REQUESTED, PROCESSING, DONE, ERROR; Amazon's use-case guide for this API
# says to poll "until the status is CANCELLED, DONE or FATAL" (the Reports API's words, whose
# waiting states are IN_QUEUE and IN_PROGRESS). Both readings are understood; a status in
# neither is waited on for a bounded number of polls, then fails naming it.
WAITING_STATUSES = frozenset({REQUESTED, PROCESSING, "IN_QUEUE", "IN_PROGRESS"})
FAILED_STATUSES = frozenset({ERROR, "FATAL", "CANCELLED", "CANCELED"})


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
    unknown_polls: int = 0  # polls that answered a status neither reading of the model names
    counted: int | None = None  # the invoices getInvoices listed for its days
    invoices_read: int = 0  # invoices read from its documents in this sync

    def saved(self) -> dict[str, Any]:
        return {"exportId": self.export_id, "documentsDone": list(self.documents_done)}


class ExportsApi(Protocol):
    """The four calls the pipeline makes; the stream implements them over the CDK's HTTP client."""

    def create_export(self, window: Window) -> str: ...

    def create_slot_wait(self) -> float:
        """Seconds until createInvoicesExport may be called again."""

    def get_export(self, export_id: str) -> Mapping[str, Any] | None:
        """The Export object, or None when Amazon no longer knows the id."""

    def download_document(self, document_id: str) -> DocumentSource:
        """Get a fresh URL for the document and start downloading it at once, to a temporary
        file that is gone once the source is closed."""


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ExportFailed(AirbyteTracedException):
    """A window's export kept ending in ERROR, FATAL or CANCELLED (or was forgotten): the sync
    stops rather than skip the window, naming the last export's end."""

    def __init__(self, window: Window, export_id: str | None, ended: str, reason: str) -> None:
        message = (
            f"Amazon could not export the invoices of {window} "
            f"({settings.EXPORT_ATTEMPTS} attempts; the last, export {export_id}, {ended}): "
            f"{reason}. The window was not skipped: the next sync tries it again."
        )
        super().__init__(message=message, internal_message=message)


class ExportStuck(AirbyteTracedException):
    """An export stayed in a status neither reading of the model names."""

    def __init__(self, window: Window, export_id: str, status: str, polls: int) -> None:
        message = (
            f"Export {export_id} of {window} stayed in status {status!r} for {polls} polls: the "
            "model names REQUESTED, PROCESSING, DONE and ERROR, and Amazon's guide IN_QUEUE, "
            "IN_PROGRESS, DONE, FATAL and CANCELLED, so the connector cannot tell whether it will "
            "ever be done. The window was not skipped: the next sync tries it again. Contact "
            "Amazon's Selling Partner support with the export ID."
        )
        super().__init__(
            message=message, internal_message=message, failure_type=FailureType.system_error
        )


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


class DateRangeRefused(Exception):
    """createInvoicesExport answered 400 because the window's date range is too long."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


CHECKPOINT = object()  # yielded when the pending exports changed and should be saved


class ExportPipeline:
    """Drives the export jobs of a sync's windows and completes them in order.

    Windows are planned as exports are created, by the WindowPlanner (planner.py): from the
    invoices getInvoices counts for each day, to fill documents. An export is created ahead
    while the documents already known would not keep getInvoicesDocument busy for the minute or
    two an export takes to process. Amazon can refuse a date range as too long (a 400 that says
    so): the planner then searches for the longest range Amazon takes, which the stream's state
    keeps for later syncs.
    """

    def __init__(
        self,
        api: ExportsApi,
        first_day: date,
        last_day: date,
        saved: Mapping[str, Mapping[str, Any]],
        logger: logging.Logger,
        planner: WindowPlanner,
        ahead: int = settings.DEFAULT_EXPORTS_AHEAD,
        clock: Clock | None = None,
        document_slot_wait: Callable[[], float] = lambda: 0.0,
        poll_unit: Callable[[], float] = lambda: 1 / settings.USAGE_PLANS["getInvoicesExport"].rate,
        on_created: Callable[[Window], None] = lambda window: None,
        known_unchanged: Callable[[str], bool] = lambda document_id: False,
    ) -> None:
        self._api = api
        self._clock = clock or SystemClock()
        self._logger = logger
        self._ahead = max(1, ahead)
        self._slot_wait = document_slot_wait
        self._poll_unit = poll_unit  # seconds between two calls of getInvoicesExport
        self._on_created = on_created  # told of every export created, with its window
        self._known_unchanged = known_unchanged  # a document id that is an unchanged invoice's
        self._skip: frozenset[date] = frozenset()  # days not to export (nothing changed)
        self.planner = planner
        self._replan_at = 0.0  # when to ask the planner again after it chose to wait
        self.last_day = last_day
        self.completed: Window | None = None  # the last window read to its end
        self._next_day = first_day
        self._jobs: dict[str, Job] = {}
        # Exports in flight when the last sync stopped, reused when the plan reaches their first
        # day: polled again, never created again while Amazon still knows them.
        self._saved: dict[date, Job] = {}
        for key in sorted(saved):
            window = Window.from_key(key)
            if window.first < first_day or window.last > last_day:
                logger.info(f"Not resuming the saved export of {window}: outside this sync's plan.")
                continue
            job = Job(window, export_id=saved[key]["exportId"], status=REQUESTED)
            job.documents_done = list(saved[key].get("documentsDone") or [])
            self._saved[window.first] = job

    def saved_windows(self) -> list[Window]:
        """The windows of the exports a killed sync left in flight, read on in this one."""
        return [job.window for job in self._saved.values()]

    def skip_days(self, days: frozenset[date]) -> None:
        """Days not to export in this sync (known unchanged); set before the first window. A
        window never spans one: the days around it are exported in windows of their own."""
        assert not self._jobs, "skipped days are set before any window is planned"
        self._skip = days
        self._skip_ahead()

    def _skip_ahead(self) -> None:
        while self._next_day in self._skip and self._next_day <= self.last_day:
            self._next_day += timedelta(days=1)

    def windows(self) -> Iterator[Window]:
        """The windows of the sync, in order, each planned when it is needed."""
        while self._jobs or self._plan_now():
            yield self.current_window

    @property
    def current_window(self) -> Window:
        """The window being read (it can shrink while its export is created: see _shorten)."""
        return next(iter(self._jobs.values())).window

    def pending(self) -> dict[str, dict[str, Any]]:
        """The exports created and not yet fully read, for the stream's state: those of the
        windows planned, and those the plan has not reached yet (saved by an earlier sync, or
        set aside when a refused range shortened the window before them)."""
        jobs = [*self._jobs.values(), *self._saved.values()]
        return {job.window.key: job.saved() for job in jobs if job.export_id}

    def read_window(self, window: Window) -> Iterator[Entry | object]:
        """Complete the window being read: create, poll, download; yield its entries and
        checkpoints. `completed` then holds the window as read (shorter than `window` when
        Amazon refused its date range)."""
        job = next(iter(self._jobs.values()))
        assert job.window.first == window.first, "windows are read in order"
        while job.status != DONE:
            yield from self._advance(job)
            if job.status != DONE:
                self._wait(min(self._next_poll(), self._next_create()))
        whole = not job.documents_done  # every document read in this sync: a full count
        unchanged = [d for d in job.document_ids if self._known_unchanged(d)]
        if unchanged:
            # Under the model's example (a document is one invoice's XML, named by the
            # invoice), a document named after an invoice known unchanged holds nothing new.
            self._logger.info(
                f"Window {job.window}: {len(unchanged)} of its {len(job.document_ids)} "
                "document(s) are named after invoices known unchanged since they were "
                "delivered: not fetched."
            )
            job.documents_done += [d for d in unchanged if d not in job.documents_done]
            whole = False  # its count is not the window's: the plan does not learn from it
        for document_id in job.document_ids:
            if document_id in job.documents_done:
                continue
            # Amazon allows one document a minute: keep the other exports moving meanwhile.
            while (slot := self._slot_wait()) > 0:
                yield from self._advance(job)
                self._wait(min(slot, self._next_poll(), self._next_create()))
            yield from self._read_document(job, document_id)
            job.documents_done.append(document_id)
            yield CHECKPOINT
        if whole:
            self.planner.window_read(job.window, job.invoices_read, len(job.document_ids))
        del self._jobs[job.window.key]
        self.completed = job.window

    def _advance(self, current: Job) -> Iterator[object]:
        """Create what may be created and poll what is due: a checkpoint after each export
        created (so that a sync killed while the next one waits for its slot still has the
        first in its state) and after each export a poll had to create again."""
        yield from self._create_ahead(current)
        yield from self._poll_due()

    def _plan_now(self) -> bool:
        """Plan the next window when nothing is left to read: a short wait for the counts of
        its days (the first window of a sync that knows M), then with what is known."""
        deadline = time.monotonic() + settings.FIRST_PLAN_WAIT_SECONDS
        while (planned := self._plan(urgent=False)) is None:
            counts = self.planner.counts
            if counts is None or counts.finished or time.monotonic() >= deadline:
                return bool(self._plan(urgent=True))
            counts.wait(min(1.0, max(0.0, deadline - time.monotonic())))
        return planned

    def _plan(self, urgent: bool) -> bool | None:
        """Add the job of the next window (a saved export's, or a NEW one the planner chose):
        True; False when no day is left; None when the planner waits for counts or for M."""
        if self._next_day > self.last_day:
            return False
        job = self._saved.pop(self._next_day, None)
        if job is None:
            stop = self.last_day
            later = [day for day in self._saved if day > self._next_day]
            later += [day for day in self._skip if day > self._next_day]
            if later:  # stop short of a saved export's window, or of a day not exported
                stop = min(stop, min(later) - timedelta(days=1))
            planned = self.planner.plan(self._next_day, stop, urgent)
            if planned is None:
                return None
            job = Job(planned.window, counted=planned.invoices)
            what = "to learn how many invoices a document holds" if planned.probe else "planned"
            counted = "" if planned.invoices is None else f", {planned.invoices} invoice(s) listed"
            self._logger.info(f"Window {job.window}: {what} ({job.window.days} day(s){counted}).")
        else:
            job.counted = self.planner.expected_invoices(job.window)
        self._jobs[job.window.key] = job
        self._next_day = job.window.last + timedelta(days=1)
        self._skip_ahead()
        return True

    def _queued(self) -> tuple[int, bool]:
        """The documents the exports created ahead hold and are not read yet, and whether some
        export's documents are not known yet (counted as one)."""
        documents, unknown = 0, False
        for job in self._jobs.values():
            if job.status == DONE:
                documents += len(job.document_ids) - len(job.documents_done)
                continue
            expected = self.planner.expected_documents(job.counted)
            unknown = unknown or expected is None
            documents += 1 if expected is None else expected
        return documents, unknown

    def _room_ahead(self) -> bool:
        """Whether another export may be created ahead: fewer than `ahead` exports not read, and
        fewer documents known ahead than keep getInvoicesDocument busy while one processes."""
        outstanding = sum(1 for job in self._jobs.values() if job.export_id)
        documents, _ = self._queued()
        return outstanding < self._ahead and documents < settings.EXPORTS_AHEAD_DOCUMENTS

    def _next_create(self) -> float:
        """Seconds until another export may be created ahead, or a long while."""
        if self._next_day > self.last_day or not self._room_ahead():
            return settings.EXPORT_POLL_MAX_INTERVALS * self._poll_unit()
        replan = self._replan_at - self._clock.now()
        return max(self._api.create_slot_wait(), replan)

    def _learn(self, job: Job) -> None:
        """Tell the planner how many documents this export needed."""
        self.planner.export_done(job.window, len(job.document_ids), job.counted)

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

    def _create_ahead(self, current: Job) -> Iterator[object]:
        """Create exports in window order: the current window's at once, the next ones planned
        and created while there is room ahead and createInvoicesExport is free (so that polls
        and documents never wait behind it); a checkpoint after each."""
        while True:
            job = next((job for job in self._jobs.values() if job.status == NEW), None)
            if job is None:
                if self._next_day > self.last_day or not self._room_ahead():
                    return
                if self._api.create_slot_wait() > 0:
                    return
                if self._clock.now() < self._replan_at:
                    return
                documents, unknown = self._queued()
                urgent = not unknown and documents <= settings.EXPORT_LEAD_DOCUMENTS
                if not self._plan(urgent):
                    # The planner waits for counts or for M: ask again a little later (not
                    # sooner than PLAN_RECHECK_SECONDS, however fast Amazon lets polls go).
                    interval = settings.EXPORT_POLL_FIRST_INTERVALS * self._poll_unit()
                    self._replan_at = self._clock.now() + max(
                        interval, settings.PLAN_RECHECK_SECONDS
                    )
                    return
                continue
            if job is not current and self._api.create_slot_wait() > 0:
                return
            self._create(job)
            yield CHECKPOINT

    def _create(self, job: Job) -> None:
        while True:
            try:
                job.export_id = self._api.create_export(job.window)
                break
            except DateRangeRefused as refused:
                self._shorten(job, refused.reason)
        self.planner.created(job.window)
        self._on_created(job.window)
        job.attempts += 1
        job.status = REQUESTED
        job.document_ids, job.documents_done, job.polls, job.unknown_polls = [], [], 0, 0
        # The first poll goes at once: it costs one call of a generous plan and tells the rate
        # Amazon applies to getInvoicesExport, which paces the polls that follow.
        job.poll_intervals = settings.EXPORT_POLL_FIRST_INTERVALS // 2
        job.next_poll_at = self._clock.now()
        self._logger.info(
            f"Window {job.window}: created export {job.export_id} (attempt {job.attempts})."
        )

    def _shorten(self, job: Job, reason: str) -> None:
        """Amazon refused the window's date range as too long: shorten it as the planner says
        (halfway to the longest range Amazon took), and never plan one as long again in this
        sync. The days it drops are planned next."""
        days = job.window.days
        if days <= 1:
            raise AirbyteTracedException(
                message=f"Amazon refused to export the single day {job.window}: {reason}",
                failure_type=FailureType.system_error,
            )
        longest = self.planner.refused(days)
        self._logger.warning(
            f"Amazon refused the {days}-day window {job.window} ({reason}): trying {longest} "
            f"day(s); windows stay shorter than {days} day(s)."
        )
        job.window = Window(job.window.first, job.window.first + timedelta(longest - 1))
        job.counted = self.planner.expected_invoices(job.window)
        kept: dict[str, Job] = {}
        for planned in self._jobs.values():
            if planned.window.first <= job.window.first:
                kept[planned.window.key] = planned
            elif planned.export_id:  # created already: reused when the plan reaches it
                self._saved[planned.window.first] = planned
        self._jobs = kept
        self._next_day = job.window.last + timedelta(days=1)
        self._skip_ahead()

    def _poll_due(self) -> Iterator[object]:
        """Poll every in-flight export whose time has come; a checkpoint after each export that
        had to be created again."""
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
            elif status in FAILED_STATUSES or export is None:
                if export is None:
                    reason = "getInvoicesExport answered 404"
                else:
                    reason = export.get("errorMessage") or "no errorMessage"
                if job.attempts >= settings.EXPORT_ATTEMPTS:
                    ended = "was no longer known" if export is None else f"ended {status}"
                    raise ExportFailed(job.window, job.export_id, ended, reason)
                self._logger.warning(
                    f"Window {job.window}: export {job.export_id} ended in {status} ({reason}); "
                    "creating it again."
                )
                self._create(job)
                yield CHECKPOINT
            else:
                if status not in WAITING_STATUSES:
                    self._unknown_status(job, str(status))
                job.status = PROCESSING
                job.poll_intervals = min(job.poll_intervals * 2, settings.EXPORT_POLL_MAX_INTERVALS)
                job.next_poll_at = self._clock.now() + job.poll_intervals * self._poll_unit()

    def _unknown_status(self, job: Job, status: str) -> None:
        """A status neither reading of the model names: waited on, for a bounded number of
        polls, then the sync fails naming it (never taken for DONE, never retried blindly)."""
        job.unknown_polls += 1
        limit = settings.EXPORT_UNKNOWN_STATUS_POLLS
        if job.unknown_polls == 1:
            self._logger.warning(
                f"Window {job.window}: export {job.export_id} is in status {status!r}, which this "
                f"connector does not know; waiting for it to change ({limit} polls at most)."
            )
        elif job.unknown_polls >= limit:
            raise ExportStuck(job.window, job.export_id or "", status, job.unknown_polls)

    def _entries(
        self, source: DocumentSource, document_id: str, skip: frozenset[str]
    ) -> Iterator[XmlEntry]:
        """A document's invoice files: the entries of a ZIP, or the one file of an XML body."""
        if body_kind(source) == ZIP:
            yield from stream_entries(source, skip=skip)
            return
        # The model's example URL ends in .xml: such a body is one invoice, named after the
        # document (the only name it has).
        self._logger.warning(
            f"Document {document_id} is one XML file, not a ZIP: read as invoice {document_id}, "
            "named after the document id."
        )
        entry = single_xml_entry(source, document_id)
        if entry.file_name not in skip:
            yield entry

    def _read_document(self, job: Job, document_id: str) -> Iterator[Entry]:
        """Read a document while it downloads; download it again when it breaks off or is
        unreadable, skipping the entries already read."""
        emitted: set[str] = set()  # entries already read from an earlier, broken download
        reason = ""
        for attempt in range(1, settings.DOWNLOAD_ATTEMPTS + 1):
            started = self._clock.now()
            try:
                with self._api.download_document(document_id) as source:
                    for xml in self._entries(source, document_id, frozenset(emitted)):
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
            job.invoices_read += len(emitted)
            self.planner.document_read(job.window, len(emitted), len(job.document_ids))
            self._logger.info(
                f"Window {job.window}: document {document_id}: {len(emitted)} invoice(s), "
                f"{size / 2**20:.1f} MB, downloaded and read in {seconds:.1f} s."
            )
            return
        raise DocumentUnreadable(document_id, job.window, reason)
