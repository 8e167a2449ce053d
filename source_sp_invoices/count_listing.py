"""The getInvoices listing that counts the invoices of each day for the export plan, and lists
the slots change detection compares.

When the `invoices` stream is selected it lists its own range, and its pages are counted as
they pass (streams/invoices.py): this listing asks only for what the document streams need and
that stream will not list (all of it when it is not selected), and emits nothing:
- first, the slots of the lookback days the document pass compares before it exports anything
  (changes/), unless the `invoices` stream lists them slot by slot among its first windows;
- then the slots of the last days, whose listing the document streams keep for the next sync,
  unless the `invoices` stream lists them slot by slot;
- then the days the plan counts.
It runs in a thread of its own, so that a getInvoices page every ten seconds never holds up a
poll or a document, and shares the call budget of the `invoices` stream (source.py), so that
together they keep getInvoices' usage plan. If that stream stops early, what it did not list is
listed here. A failure costs the plan its counts (windows are then planned from the density of
the windows read, planner.py) and the comparison its slots (the days are then exported again,
as if they had changed).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from source_sp_invoices.changes.slots import Slot, listing_windows
from source_sp_invoices.dates import format_datetime
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.streams.invoices import Invoices

_RECHECK_SECONDS = 5.0  # how often to look whether the `invoices` stream stopped early


class CountListing:
    """Lists, into `counts`, what the document pass needs and the `invoices` stream does not
    list: the slots `compared` (first), the slots `kept`, and the days first..last (if any)."""

    def __init__(
        self,
        stream: Invoices,
        counts: InvoiceCounts,
        days: tuple[date, date] | None,
        logger: logging.Logger,
        compared: Sequence[Slot] = (),
        kept: Sequence[Slot] = (),
    ) -> None:
        self._stream = stream
        self._counts = counts
        self._range = None
        if days is not None:
            first, last = days
            self._range = (day_start(first), day_start(last + timedelta(days=1)))
        self._compared = list(compared)
        self._kept = list(kept)
        self._aligned = [(slot.start, slot.end) for slot in [*self._compared, *self._kept]]
        self._logger = logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="count-listing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop at the next record (the document pass ended)."""
        self._stop.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                slots = self._slots_to_list()
                if slots:
                    self._list_slots(slots)
                    continue
                gap = self._next_gap()
                if gap is not None:
                    self._list(*gap)
                    continue
                if self._done():
                    return
                self._counts.wait(_RECHECK_SECONDS)  # the `invoices` stream lists the rest
        except Exception as error:  # the plan loses its counts, not the sync its data
            self._logger.warning(
                f"Listing the invoices of each day with getInvoices failed ({error}): the "
                "remaining export windows are planned from the invoices read so far, and the "
                "days whose changes could not be compared are exported again."
            )
        finally:
            self._counts.finish()

    def _done(self) -> bool:
        counts = self._counts
        days_listed = self._range is None or not counts.unlisted(*self._range)
        return days_listed and not counts.unlisted_slots([*self._compared, *self._kept])

    def _slots_to_list(self) -> list[Slot]:
        """The slots nobody has listed or will list: those compared first (waited for at once
        unless the `invoices` stream lists them among its first windows), then those kept."""
        counts = self._counts
        compared = counts.unlisted_slots(self._compared)
        first = [slot for slot in compared if not counts.planned_by_slot(slot, early=True)]
        if first:
            return first
        kept = counts.unlisted_slots(self._kept)
        return [slot for slot in kept if not counts.planned_by_slot(slot, early=False)]

    def _list_slots(self, slots: list[Slot]) -> None:
        self._logger.info(
            f"Listing {len(slots)} slot(s) of time with getInvoices from {slots[0]}, to compare "
            "the days they belong to with what earlier syncs delivered."
        )
        for slot in slots:
            window = {
                "dateStart": format_datetime(slot.start),
                "dateEnd": format_datetime(slot.end),
            }
            for _ in self._stream.window_records(window):
                if self._stop.is_set():
                    return

    def _next_gap(self) -> tuple[datetime, datetime] | None:
        """The first part of the days to count nobody has listed or will list."""
        if self._range is None:
            return None
        planned = self._counts.planned()
        for start, end in self._counts.unlisted(*self._range):
            if planned is not None:
                low, high = planned
                if start < low:
                    end = min(end, low)  # what lies before it
                elif end > high:
                    start = max(start, high)  # what lies after it
                else:
                    continue  # the `invoices` stream lists it
            return start, end
        return None

    def _list(self, start: datetime, end: datetime) -> None:
        size = self._stream.config.invoices_window
        windows = list(listing_windows(start, end, size, self._aligned))
        self._logger.info(
            f"Counting the invoices of {format_datetime(start)} to {format_datetime(end)} with "
            f"getInvoices ({len(windows)} window(s)), to plan the export windows."
        )
        for low, high in windows:
            window = {"dateStart": format_datetime(low), "dateEnd": format_datetime(high)}
            for _ in self._stream.window_records(window):
                if self._stop.is_set():
                    return
