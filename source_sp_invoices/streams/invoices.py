"""invoices: getInvoices, read window by window, every page, with state saved after each window."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from airbyte_cdk.models import SyncMode

from source_sp_invoices import settings
from source_sp_invoices.changes.delivered import (
    SlotRecord,
    compare,
    read_slot_records,
    write_slot_records,
)
from source_sp_invoices.changes.sketch import element_of
from source_sp_invoices.changes.slots import Slot, listing_windows, slot_floor, within_one_slot
from source_sp_invoices.dates import format_datetime, parse_datetime
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.state import read_state_datetime
from source_sp_invoices.streams.base import PagedSpApiStream

# The last days of every listing go slot by slot (changes/slots.py): the lookback of the next
# sync, and the day or two the document streams' last exports and their Brazil reading reach.
ALIGNED_DAYS_BEYOND_LOOKBACK = 2


class Invoices(PagedSpApiStream):
    """Invoice metadata; the cursor is the invoice's issue date.

    State: {"date": D} means every window ending at or before D was read completely. While a sync
    runs, "resume_from" holds the end of its last finished window, so that a sync that was killed
    continues there instead of starting again from D minus the lookback. "delivered" holds, for
    each slot of the lookback (changes/), what was emitted of it: an incremental sync lists the
    lookback days again and emits only the invoices that are new or changed since (with
    `lookback_exports: every_day`, all of them, as 0.5.0 did).

    When the document streams are read too, `counts` takes the invoices of each day from these
    very pages, to plan their export windows (export_pipeline/invoice_counts.py): one listing
    serves both.
    """

    name = "invoices"
    primary_key = "id"
    cursor_field = "date"
    state_keys = ("date", "resume_from", "delivered")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plan_end: datetime | None = None
        self._delivered: dict[Slot, SlotRecord] = {}
        self._detecting = False  # whether this sync emits only what changed
        self.counts: InvoiceCounts | None = None

    def check_state(self, state: Mapping[str, Any]) -> None:
        for key in ("date", "resume_from"):
            if key in state:
                read_state_datetime(self.name, state, key)
        self._delivered = read_slot_records(self.name, state, "delivered")

    def path(self, **kwargs: Any) -> str:
        return "invoices"

    def stream_slices(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any] | None]:
        begin, end = self.planned_range(sync_mode)
        self._detecting = self.detects_changes(sync_mode)
        aligned = self.aligned_spans(sync_mode, begin, end)
        cuts = [record.until for record in self._delivered.values() if record.until]
        windows = list(listing_windows(begin, end, self.config.invoices_window, aligned, cuts))
        self._plan_end = end
        self.announce(sync_mode)
        self.logger.info(
            f"{self.name}: {len(windows)} window(s) from {format_datetime(begin)} "
            f"to {format_datetime(end)}"
            + (
                "; the invoices listed before are compared with what earlier syncs emitted: "
                "only new and changed ones are emitted again"
                if self._detecting and self._delivered
                else ""
            )
        )
        for number, (start, stop) in enumerate(windows, 1):
            window = {
                "dateStart": format_datetime(start),
                "dateEnd": format_datetime(stop),
                "window": f"{number}/{len(windows)}",
            }
            slot = within_one_slot(start, stop)
            if slot is not None:
                window["slot"] = slot.key
            yield window

    def announce(self, sync_mode: SyncMode) -> None:
        """Tell the counts what this sync lists, and which of it slot by slot, so that no other
        listing asks for the same (read_together.py calls it before any thread starts)."""
        if self.counts is None:
            return
        begin, end = self.planned_range(sync_mode)
        soon = begin + 2 * self.config.invoices_window
        self.counts.plan_listing(begin, end, self.aligned_spans(sync_mode, begin, end), soon)

    def detects_changes(self, sync_mode: SyncMode) -> bool:
        """Whether an incremental sync emits only what changed in the days it looks back at."""
        config = self.config
        return sync_mode == SyncMode.incremental and config.lookback_changed_only

    def aligned_spans(
        self, sync_mode: SyncMode, begin: datetime, end: datetime
    ) -> list[tuple[datetime, datetime]]:
        """Where the listing goes slot by slot: the last days (the next sync's lookback, and what
        the document streams compare), and every slot an earlier sync delivered; nowhere when
        neither a later sync nor the document streams compare anything."""
        keeps = self.detects_changes(sync_mode) and self.config.lookback
        if not keeps and self.counts is None:
            return []
        days = self.config.lookback.days + ALIGNED_DAYS_BEYOND_LOOKBACK
        spans = [(max(begin, day_start(end.date() - timedelta(days=days))), end)]
        spans += [(slot.start, slot.end) for slot in self._delivered]
        return spans

    def planned_range(self, sync_mode: SyncMode) -> tuple[datetime, datetime]:
        """What a sync in this mode lists: from where a killed sync stopped, else from the
        cursor less the lookback, else from the start date; to the end date or now."""
        begin = self.config.start
        if sync_mode == SyncMode.incremental and "resume_from" in self._state:
            begin = max(begin, self._state_datetime("resume_from"))
        elif sync_mode == SyncMode.incremental and "date" in self._state:
            looked_back = self._state_datetime("date") - self.config.lookback
            if self.detects_changes(sync_mode) and self.config.lookback:
                # Whole slots, so that each is compared with what was emitted of it.
                looked_back = slot_floor(looked_back)
            begin = max(begin, looked_back)
        return begin, self.config.end_or_now()

    def first_page_params(self, stream_slice: Mapping[str, Any]) -> MutableMapping[str, Any]:
        return {
            "dateStart": stream_slice["dateStart"],
            "dateEnd": stream_slice["dateEnd"],
            "pageSize": settings.INVOICES_PAGE_SIZE,
            "sortBy": "START_DATE_TIME",
            "sortOrder": "ASC",
            **self.config.filters.query_params(),
        }

    def records_of(self, body: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        # Every record Amazon returns is emitted, even one whose `date` falls outside the window
        # asked for: the model says getInvoices filters on the "invoice creation date", which
        # need not be the record's `date`, so a record dropped here could be in no window at
        # all. An invoice seen in two windows is harmless: the primary key is `id`.
        return body.get("invoices") or []

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        assert stream_slice is not None
        count = emitted = 0
        start = parse_datetime(stream_slice["dateStart"])
        stop = parse_datetime(stream_slice["dateEnd"])
        slot = Slot.from_key(stream_slice["slot"]) if "slot" in stream_slice else None
        try:
            if slot is None:
                for record in self.window_records(stream_slice):
                    count += 1
                    yield record
                emitted = count
            else:
                # A slot's window is read whole before any of it is emitted: only what changed
                # since the slot was delivered goes out.
                elements: list[int] = []
                listed = list(self.window_records(stream_slice, elements))
                count = len(listed)
                wanted = self._deliver(slot, start, stop, elements)
                for record, element in zip(listed, elements, strict=True):
                    if wanted is None or element in wanted:
                        emitted += 1
                        yield record
        except Exception as error:
            if self.counts is not None:  # the rest is listed for the document streams elsewhere
                self.counts.stream_stopped(str(error))
            raise
        unchanged = f", {count - emitted} unchanged since the last sync" if emitted < count else ""
        self.logger.info(
            f"{self.name}: window {stream_slice['window']} {stream_slice['dateStart']} .. "
            f"{stream_slice['dateEnd']} done, {count} invoice(s){unchanged}"
        )
        self._window_done(stop)

    def _deliver(
        self, slot: Slot, start: datetime, stop: datetime, elements: list[int]
    ) -> frozenset[int] | None:
        """What to emit of a slot's window (None: all of it), and the slot's record updated
        to what has been delivered of it."""
        record = self._delivered.get(slot)
        current = set(elements)
        until = stop if stop < slot.end else None
        if record is not None and record.until is not None and start == record.until:
            # The part after what an earlier sync listed of the slot: all of it is new.
            self._delivered[slot] = record.extended(current, until)
            return None
        if start != slot.start:  # part of a slot: nothing to compare it with
            self._delivered.pop(slot, None)
            return None
        self._delivered[slot] = SlotRecord.of(current, until)
        if not self._detecting or record is None:
            return None
        return compare(record, current).new

    def window_records(
        self, stream_slice: Mapping[str, Any], fingerprints: list[int] | None = None
    ) -> Iterator[Mapping[str, Any]]:
        """Every invoice of one window, every page; counted by day when `counts` is set. The
        fingerprint of each record of a window that lies in one slot (changes/) is computed
        once, for the counts and into `fingerprints`, in the records' order."""
        counts = self.counts
        records = super().read_records(SyncMode.full_refresh, stream_slice=stream_slice)
        start = parse_datetime(stream_slice["dateStart"])
        end = parse_datetime(stream_slice["dateEnd"])
        in_slot = within_one_slot(start, end) is not None
        if counts is None:
            for record in records:
                if fingerprints is not None and in_slot:
                    fingerprints.append(element_of(record))
                yield record
            return
        elements: dict[int, str] = {}
        reached = start.date()
        for record in records:
            if in_slot:
                element = element_of(record)
                elements[element] = str(record.get("id"))
                if fingerprints is not None:
                    fingerprints.append(element)
            issued = _issued(record)
            # Bounds are inclusive: an invoice at the end instant is the next window's too.
            if issued is not None and issued != end:
                counts.add(issued)
                # Pages come in ascending order: the days before this invoice's are listed, so
                # a long window of getInvoices gives the plan its days one by one.
                if issued.date() > reached:
                    reached = issued.date()
                    counts.listed(start, max(start, day_start(reached)))
            yield record
        if in_slot:
            counts.slot_listed(start, end, elements)
        counts.listed(start, end)

    def _window_done(self, stop: datetime) -> None:
        """Move the cursor past a finished window, never backwards."""
        state: MutableMapping[str, Any] = {"date": format_datetime(stop)}
        if "date" in self._state and self._state_datetime("date") > stop:
            state["date"] = self._state["date"]
        if self._plan_end is not None and stop < self._plan_end:
            state["resume_from"] = format_datetime(stop)
        if self.config.lookback_changed_only and self.config.lookback:
            # What the next sync looks back at, from the cursor less the lookback.
            oldest = slot_floor(parse_datetime(state["date"]) - self.config.lookback)
            kept = {slot: r for slot, r in self._delivered.items() if slot.start >= oldest}
            self._delivered = kept
            if kept:
                state["delivered"] = write_slot_records(kept)
        self._state = state

    def _state_datetime(self, key: str) -> datetime:
        return read_state_datetime(self.name, self._state, key)


def _issued(record: Mapping[str, Any]) -> datetime | None:
    """An invoice's `date`, or None if it has none that reads (still emitted: counts guide)."""
    try:
        return parse_datetime(record["date"])
    except (KeyError, TypeError, ValueError):
        return None
