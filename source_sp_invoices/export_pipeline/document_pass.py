"""One pass over the export documents for invoice_documents and invoice_items.

Both streams come from the same exports and documents, and getInvoicesDocument allows one call a
minute. The pass reads each document once and parses each XML once; the records of every
selected stream are emitted as the document is read, and then the state of every selected stream,
so both states advance together after each document: a sync killed at any moment loses at most
the document in flight, for both. A document is on disk only while it is read (see downloads.py).

Why not the CDK's concurrent framework: its partitions and cursors belong to one stream each and
its cursors carry cursor values; this pass emits two streams' records from one download and, between
two documents, checkpoints the export ids in flight and the documents already read, which no
concurrent cursor can hold.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Protocol

from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteMessage,
    AirbyteRecordMessage,
    AirbyteRecordMessageFileReference,
    AirbyteTraceMessage,
    EstimateType,
    FailureType,
    SyncMode,
    TraceType,
)
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.changes.slots import Slot
from source_sp_invoices.config import Config
from source_sp_invoices.export_pipeline.api import SpApiExports
from source_sp_invoices.export_pipeline.changed_days import ChangedDays, merged, read_records
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts
from source_sp_invoices.export_pipeline.pipeline import (
    CHECKPOINT,
    Entry,
    ExportPipeline,
)
from source_sp_invoices.export_pipeline.planner import DocumentSize, WindowPlanner
from source_sp_invoices.export_pipeline.progress import Progress, duration
from source_sp_invoices.export_pipeline.windows import Window
from source_sp_invoices.nfe import NfeError, NfeParser, ParsedNfe
from source_sp_invoices.state import read_state_date, state_message


class DocumentStream(Protocol):
    """What the pass needs of invoice_documents and invoice_items (streams/documents.py)."""

    name: str
    config: Config
    needs_nfe: bool

    @property
    def logger(self) -> Any: ...

    @property
    def state(self) -> MutableMapping[str, Any]: ...

    @state.setter
    def state(self, value: MutableMapping[str, Any]) -> None: ...

    def first_day(self, sync_mode: SyncMode) -> date: ...

    def saved_exports(self, sync_mode: SyncMode) -> Mapping[str, Mapping[str, Any]]: ...

    def exports_api(self) -> SpApiExports: ...

    def records(self, entry: Entry, parsed: ParsedNfe | str | None) -> Iterable[dict[str, Any]]: ...

    def file_of(
        self, entry: Entry, parsed: ParsedNfe | str | None
    ) -> AirbyteRecordMessageFileReference | None: ...


@dataclass
class _Output:
    """One selected stream: where it starts, what it already has, what it got."""

    stream: DocumentStream
    first: date  # the first day it needs in this sync
    saved: Mapping[str, Mapping[str, Any]]  # its exports in flight when the last sync stopped
    progress: Progress = field(init=False)
    wanted: int = 0  # invoices of the current window emitted to it
    records: int = 0  # records of the current window

    def wants(self, entry: Entry) -> bool:
        """Whether this stream still needs the entry: its window is not before the stream's
        first day, and the last sync did not finish the document for this stream."""
        if entry.window.last < self.first:
            return False
        if not self.saved:  # the usual case, once per invoice: no key to build
            return True
        saved = self.saved.get(entry.window.key)
        return not (
            saved
            and saved.get("exportId") == entry.export_id
            and entry.document_id in (saved.get("documentsDone") or ())
        )


def merged_exports(outputs: Sequence[_Output]) -> dict[str, dict[str, Any]]:
    """The exports in flight of every selected stream, as the pipeline resumes them.

    The states of both streams are equal when this version wrote them; an earlier version read
    the streams one after the other and could leave them apart. A window's document is skipped
    only when every stream that needs the window has it.
    """
    merged: dict[str, dict[str, Any]] = {}
    for key in sorted({key for output in outputs for key in output.saved}):
        window = Window.from_key(key)
        export_id = next(o.saved[key]["exportId"] for o in outputs if key in o.saved)
        done: list[str] | None = None
        for output in outputs:
            if window.last < output.first:
                continue  # this stream does not need the window
            saved = output.saved.get(key) or {}
            same_export = saved.get("exportId") == export_id
            has = (saved.get("documentsDone") or []) if same_export else []
            done = list(has) if done is None else [d for d in done if d in has]
        if done is None:  # no selected stream needs the window any more
            first = next(o.saved[key] for o in outputs if key in o.saved)
            done = list(first.get("documentsDone") or [])
        merged[key] = {"exportId": export_id, "documentsDone": done}
    return merged


# Amazon may read an export's bare dates as Brazil's days (the marketplace's time zone, UTC-3
# all year since Brazil ended daylight saving time in 2019) rather than UTC days.
BRAZIL = timezone(timedelta(hours=-3), "America/Sao_Paulo")


def now() -> datetime:
    """The current time (a function, so that tests can set it)."""
    return datetime.now(UTC)


def last_whole_day(end: datetime | None, current: datetime, logger: Any) -> date:
    """The last day the document streams export: only whole days, and only days that have
    ended both in UTC and in Brazil, so that an export of the day holds all of its invoices
    whichever time zone Amazon reads its dates in. The day of the end is read by a later sync."""
    stop = min(end, current) if end else current
    last = min(stop.date(), current.astimezone(BRAZIL).date()) - timedelta(days=1)
    if last < stop.date() - timedelta(days=1):
        logger.info(
            f"Exporting days up to {last}: {last + timedelta(days=1)} has not ended in Brazil yet "
            "(Amazon may read export dates in Brazil's time); the next sync exports it."
        )
    if end and end <= current and end.time() != datetime.min.time():
        logger.info(
            f"replication_end_date {end:%Y-%m-%dT%H:%M:%SZ} falls within a day: the document "
            f"streams export whole days, up to {last} (to 03:00 UTC of the next day if Amazon "
            "reads export dates in Brazil's time); invoices reads up to the end date itself. "
            f"The day {end.date()} is exported by a sync whose end date lies after it."
        )
    return last


class DocumentPass:
    """Reads the exports of a sync once for the selected document streams."""

    def __init__(
        self,
        streams: Sequence[tuple[DocumentStream, SyncMode]],
        counts: InvoiceCounts | None = None,
    ) -> None:
        """`counts`: the invoices of each day, as getInvoices lists them while the pass runs
        (read_together.py starts the listing); without them windows are planned by density."""
        assert streams, "at least one document stream"
        self._outputs = [
            _Output(stream, stream.first_day(mode), stream.saved_exports(mode))
            for stream, mode in streams
        ]
        driver = self._outputs[0].stream

        self.config = driver.config
        self.logger = driver.logger
        self.label = " and ".join(output.stream.name for output in self._outputs)
        self._parser = NfeParser() if self.config.parse_nfe else None
        states = [stream.state for stream, mode in streams if mode == SyncMode.incremental]
        # The longest date range Amazon took after refusing a longer one in an earlier sync.
        self._longest_range = min(_positive(states, "longestRangeDays"), default=None)
        # What earlier syncs learnt of the invoices a document holds; 0.4.0 kept, instead, the
        # days of its windows (windowDays): the first window spans as many when M is not known.
        size = DocumentSize(
            exact=max(_positive(states, "invoicesPerDocument"), default=None),
            at_least=max(_positive(states, "fullestDocument"), default=0),
        )
        learnt = _positive(states, "windowDays")
        self._longest_window = self._max_days()
        self.first = min(output.first for output in self._outputs)
        self.last = last_whole_day(self.config.end, now(), self.logger)
        self._api = driver.exports_api()
        self.planner = WindowPlanner(
            counts,
            self.logger,
            size,
            max_days=self._longest_window,
            first_days=min(learnt) if learnt else 1,
        )
        self._summarised = ""  # what the forecast has said: invoices, then documents
        self._window_ids: set[str] = set()  # the invoices read from the current window
        self.changes = self._changed_days(streams, counts)
        self.pipeline = ExportPipeline(
            self._api,
            self.first,
            self.last,
            merged_exports(self._outputs),
            self.logger,
            self.planner,
            document_slot_wait=self._api.document_slot_wait,
            poll_unit=self._api.seconds_between_polls,
            on_created=self.changes.export_created,
            known_unchanged=lambda document_id: document_id in self.changes.unchanged,
        )
        for output in self._outputs:
            output.progress = Progress(self.first, self.last, time.monotonic())

    def _changed_days(
        self, streams: Sequence[tuple[DocumentStream, SyncMode]], counts: InvoiceCounts | None
    ) -> ChangedDays:
        """The comparison of the days looked back at with what was delivered of them: only when
        every selected stream is incremental and has delivered days (else all is new)."""
        incremental = all(mode == SyncMode.incremental for _, mode in streams)
        states = [stream.state for stream, _ in streams]
        through = None
        if incremental and all("dateEnd" in state for state in states):
            through = min(read_state_date(s.name, s.state, "dateEnd") for s, _ in streams)
        records = [read_records(stream.name, stream.state) for stream, _ in streams]
        zones = {zone for _, _, zone in records}
        return ChangedDays(
            enabled=incremental and self.config.lookback_changed_only,
            first=self.first,
            delivered_through=min(through, self.last) if through else None,
            last=self.last,
            lookback_days=self.config.lookback.days,
            delivered=merged([delivered for delivered, _, _ in records]),
            pending=merged([pending for _, pending, _ in records]),
            zone=zones.pop() if len(zones) == 1 else None,
            counts=counts,
            logger=self.logger,
            label=self.label,
        )

    def listing_needs(self) -> tuple[tuple[date, date] | None, list[Slot], list[Slot]]:
        """What getInvoices must list for this pass: the days to count for the plan (None when
        windows are not planned from counts), the slots compared before anything is exported,
        and the slots kept for the next sync."""
        days = (self.first, self.last) if self.plans_from_counts else None
        return days, self.changes.compared, self.changes.kept

    @property
    def plans_from_counts(self) -> bool:
        """Whether the windows are planned from each day's invoices (not when they span one
        day each)."""
        return self._longest_window != 1

    def messages(self) -> Iterator[AirbyteMessage]:
        """Every record, state and estimate of the selected streams, in order."""
        pipeline = self.pipeline
        self.changes.decide(pipeline.saved_windows())
        pipeline.skip_days(self.changes.skip)
        for output in self._outputs:
            output.progress.skipped = len(self.changes.skip)
        self.logger.info(self._plan_message())
        number = 0
        for number, window in enumerate(pipeline.windows(), 1):
            self.logger.info(f"{self.label}: window {number}: {window}")
            invoices = 0
            for output in self._outputs:
                output.wanted = output.records = 0
            for event in pipeline.read_window(window):
                if event is CHECKPOINT:
                    yield from self._states(pipeline.current_window, finished=False)
                    self._summarise(pipeline.current_window.first)
                    continue
                assert isinstance(event, Entry)
                invoices += 1
                yield from self._records(event)
            done = pipeline.completed
            assert done is not None
            self.changes.window_read(done, self._window_ids)
            self._window_ids = set()
            yield from self._states(done, finished=True)
            yield from self._window_done(done, invoices)
            self._summarise(done.last + timedelta(days=1))
        if not number:
            yield from self._unread_states()
        for output in self._outputs:
            self.logger.info(output.progress.summary(output.stream.name))

    def _unread_states(self) -> Iterator[AirbyteMessage]:
        """When no window was read (nothing changed, no new day): a state only if what it keeps
        of the slots moved on (an export a killed sync left, found unchanged)."""
        changes = self.changes.state(None, None)
        for output in self._outputs:
            before = dict(output.stream.state)
            kept = ("delivered", "pending", "exportDayZone")
            after = {k: v for k, v in before.items() if k not in kept}
            after.update(changes)
            if self.changes.enabled and after != before:
                output.stream.state = after
                yield state_message(output.stream.name, after)

    def _records(self, entry: Entry) -> Iterator[AirbyteMessage]:
        """The records of one invoice XML for every stream that still needs it: parsed once."""
        self._window_ids.add(entry.xml.invoice_id)
        if entry.xml.invoice_id in self.changes.unchanged:
            return  # delivered before, and unchanged since: exported again for another invoice
        wanted = [output for output in self._outputs if output.wants(entry)]
        parsed: ParsedNfe | str | None = None
        if self._parser is not None and any(output.stream.needs_nfe for output in wanted):
            parsed = self._parse(entry)
        # Messages built here skip the CDK's per-record conversion (a copy of the record and
        # type checks): tens of thousands of records per document.
        emitted_at = time.time_ns() // 1_000_000
        for output in wanted:
            output.wanted += 1
            name = output.stream.name
            # Written whole before its record is emitted (file transfer; None without it).
            file = output.stream.file_of(entry, parsed)
            for record in output.stream.records(entry, parsed):
                output.records += 1
                yield AirbyteMessage(
                    type=MessageType.RECORD,
                    record=AirbyteRecordMessage(
                        stream=name, data=record, emitted_at=emitted_at, file_reference=file
                    ),
                )

    def _parse(self, entry: Entry) -> ParsedNfe | str:
        """The NF-e's columns, or why the XML is not a readable NF-e (logged, naming the file).

        By default the raw XML still lands in invoice_documents with `nfeParseError` saying why
        its columns are empty: an unreadable file neither stops the sync nor loses the invoice.
        With `invalid_xml: fail_sync` the sync stops here instead.
        """
        assert self._parser is not None
        try:
            return self._parser.parse(entry.xml.data)  # as stored: no second encoding
        except NfeError as error:
            where = (
                f"{entry.xml.file_name} of export {entry.export_id} "
                f"(document {entry.document_id}, window {entry.window})"
            )
            if self.config.fail_on_invalid_xml:
                raise AirbyteTracedException(
                    message=f"{where} is not a readable NF-e: {error}. The sync stops because "
                    "`invalid_xml` is fail_sync; set it to emit_with_error to land such "
                    "invoices with their raw XML and the reason in nfeParseError.",
                    # The file will not change: a retry fails the same way, so not retried.
                    failure_type=FailureType.config_error,
                ) from None
            self.logger.warning(f"{self.label}: {where} is not a readable NF-e: {error}")
            return str(error)

    def _states(self, window: Window, finished: bool) -> Iterator[AirbyteMessage]:
        states = [self._state(output, window, finished) for output in self._outputs]
        # Every day before `resume` is read in this sync (all of them when None).
        resume: date | None = window.last + timedelta(days=1) if finished else window.first
        if finished and not self._more_after(window):
            resume = None
        ends = [date.fromisoformat(state["dateEnd"]) for state in states if "dateEnd" in state]
        through = min(ends) if len(ends) == len(states) else None
        changes = self.changes.state(resume, through)
        for output, state in zip(self._outputs, states, strict=True):
            output.stream.state = {**state, **changes}
            yield state_message(output.stream.name, output.stream.state)

    def _more_after(self, window: Window) -> bool:
        """Whether this sync exports a day after the window (days known unchanged are not)."""
        day = window.last + timedelta(days=1)
        while day <= self.last:
            if day not in self.changes.skip:
                return True
            day += timedelta(days=1)
        return False

    def _state(self, output: _Output, window: Window, finished: bool) -> dict[str, Any]:
        """A stream's state: the cursor only passes a window once all of its documents were
        read, and never goes back; the exports in flight are the pass's, for both streams."""
        name, before = output.stream.name, output.stream.state
        state: dict[str, Any] = {}
        done = window.last if finished else window.first - timedelta(days=1)
        if "dateEnd" in before and read_state_date(name, before, "dateEnd") > done:
            state["dateEnd"] = before["dateEnd"]
        elif done >= self.config.start.date():
            state["dateEnd"] = done.isoformat()
        if not finished or self._more_after(window):
            resume = window.last + timedelta(days=1) if finished else window.first
            # A stream the pass is catching up for another stream resumes where it was.
            state["resume_from"] = max(resume, output.first).isoformat()
        pending = self.pipeline.pending()
        if pending:
            state["exports"] = pending
        size = self.planner.size
        if size.exact:
            state["invoicesPerDocument"] = size.exact
        elif size.at_least:
            state["fullestDocument"] = size.at_least
        longest = self.planner.longest_range or self._longest_range
        if longest:
            state["longestRangeDays"] = longest
        return state

    def _max_days(self) -> int | None:
        """The longest window: documents_window_days, or shorter if Amazon refused a longer
        date range in an earlier sync (said once, with how to learn again)."""
        limits = [days for days in (self.config.documents_window_days, self._longest_range) if days]
        if self._longest_range and min(limits) == self._longest_range:
            self.logger.info(
                f"Export windows span at most {self._longest_range} day(s): Amazon refused a "
                "longer date range in an earlier sync (the state's longestRangeDays: remove it "
                "from the connection's state to try longer ranges again)."
            )
        return min(limits, default=None)

    def _window_done(self, window: Window, invoices: int) -> Iterator[AirbyteMessage]:
        """A log line for the window and an Airbyte ESTIMATE of each stream's rows."""
        counts = []
        for output in self._outputs:
            output.progress.window_done(window, output.wanted, output.records)
            counts.append(f"{output.records} {output.stream.name} record(s)")
        progress = self._outputs[0].progress
        self.logger.info(
            f"{self.label}: window {window} done, {invoices} invoice(s), {', '.join(counts)}; "
            f"{progress.days_done} of {progress.days} day(s) read"
        )
        for output in self._outputs:
            estimate = output.progress.row_estimate()
            if estimate is None:
                continue
            yield AirbyteMessage(
                type=MessageType.TRACE,
                trace=AirbyteTraceMessage(
                    type=TraceType.ESTIMATE,
                    emitted_at=time.time() * 1000,
                    estimate=AirbyteEstimateTraceMessage(
                        name=output.stream.name, type=EstimateType.STREAM, row_estimate=estimate
                    ),
                ),
            )

    def _plan_message(self) -> str:
        """Say up front what the sync exports and how its windows are planned."""
        days = self._outputs[0].progress.days
        if days <= 0 and self.changes.skip:
            return (
                f"{self.label}: nothing to export: no export, no document. The days looked "
                f"back at are unchanged and no new day has ended (the last whole day is "
                f"{self.last})."
            )
        if days <= 0:
            return f"{self.label}: nothing to export (the last whole day, {self.last}, is done)."
        per_document = self._api.seconds_per_document()
        if self._longest_window == 1:
            return (
                f"{self.label}: days {self.first} to {self.last} ({days} day(s)) in windows of one "
                f"day: at least {days} document(s); Amazon allows one document every "
                f"{per_document:.0f} s, so this takes at least {duration(days * per_document)}."
            )
        size = self.planner.size
        if size.exact:
            how = f"to fill documents of {size.exact} invoices (learnt in an earlier sync)"
        else:
            how = (
                "to fill documents, once an export that splits says how many invoices a "
                "document holds"
            )
        longest = self._longest_window
        most = f"; windows span at most {longest} day(s)" if longest else ""
        return (
            f"{self.label}: days {self.first} to {self.last} ({days} day(s)), in windows planned "
            f"from the invoices getInvoices lists for each day, {how}{most}. Amazon allows one "
            f"document every {per_document:.0f} s: the documents of the backfill are said once "
            "every day is listed."
        )

    def _summarise(self, first: date) -> None:
        """Once every day from `first` on is listed, say how many documents they take and how
        long (once M is known; before, once, that it is not)."""
        if self._summarised == "documents" or first > self.last:
            return
        forecast = self.planner.forecast(first, self.last)
        if forecast is None or (forecast.documents is None and self._summarised):
            return
        self._summarised = "invoices" if forecast.documents is None else "documents"
        listed = f"{self.label}: {forecast.invoices} invoice(s) listed for {first}..{self.last}"
        if forecast.documents is None:
            seen = forecast.per_document
            held = f"a document has held up to {seen}" if seen else "no document read yet"
            self.logger.info(f"{listed}; how many invoices a document holds is not known ({held}).")
            return
        seconds = forecast.documents * self._api.seconds_per_document()
        self.logger.info(
            f"{listed}: planned in {forecast.documents} document(s) of up to "
            f"{forecast.per_document} invoices (the fewest possible: {forecast.fewest}), about "
            f"{duration(seconds)} at Amazon's document rate."
        )


def _positive(states: Iterable[Mapping[str, Any]], key: str) -> list[int]:
    """The positive whole numbers saved under `key` (anything else is ignored)."""
    values = (state.get(key) for state in states)
    return [value for value in values if isinstance(value, int) and value > 0]
