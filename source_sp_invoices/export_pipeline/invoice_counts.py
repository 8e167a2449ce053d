"""How many invoices each UTC day holds, as getInvoices lists them: what export windows are
planned from.

getInvoicesDocument allows one call a minute and an export of n invoices gives ceil(n / M)
documents, so a window whose invoices come close to a multiple of M costs no document more than
it must. The counts come from getInvoices with the export's filters: from the `invoices` stream's
own pages when it is selected (one listing serves both), else from a listing that emits nothing
(count_listing.py). Both write here from their own thread; the export pipeline reads.

A count guides the plan and nothing else: every record still comes from the exports, so a count
that is off (getInvoices filtering on another date than the export, Brazil's day instead of
UTC's) costs at most a partly filled document, never an invoice.

The same listings say, for change detection (changes/), which invoices each slot of the recent
days holds: a listing window that lies in one slot gives the slot its invoices' fingerprints,
and a slot is known once windows of its own cover it. The first complete listing of a slot is
the one kept for the sync (`SlotListing`).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic

from source_sp_invoices.changes.slots import Slot, merged_spans, within_one_slot


def day_start(day: date) -> datetime:
    """The first instant of a UTC day."""
    return datetime.combine(day, time.min, tzinfo=UTC)


@dataclass
class SlotListing:
    """What getInvoices listed in one slot: each invoice's fingerprint and id."""

    slot: Slot
    elements: dict[int, str] = field(default_factory=dict)
    covered: list[tuple[datetime, datetime]] = field(default_factory=list)
    complete: bool = False

    def ids(self, elements: Iterable[int]) -> set[str]:
        return {self.elements[element] for element in elements if element in self.elements}


class InvoiceCounts:
    """Invoices per UTC day of their `date`, and which instants were listed to the end.

    A day's count is known once the whole day lies in listed time. `planned` is the range the
    `invoices` stream will list in this sync, so that no other listing asks for it again.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._days: Counter[date] = Counter()
        self._listed: list[tuple[datetime, datetime]] = []  # disjoint, sorted [start, end)
        self._planned: tuple[datetime, datetime] | None = None
        self._stopped: str | None = None  # why the `invoices` stream stopped listing, if it did
        self._finished = False  # no listing will add anything more
        self._slots: dict[Slot, SlotListing] = {}
        self._aligned: list[tuple[datetime, datetime]] = []  # what `invoices` lists by slot
        self._soon: datetime | None = None  # what it lists before this, it lists first

    def add(self, issued: datetime) -> None:
        """One listed invoice, by the UTC day of its `date`."""
        day = issued.astimezone(UTC).date()
        with self._lock:
            self._days[day] += 1

    def listed(self, start: datetime, end: datetime) -> None:
        """Every invoice in [start, end) was added: the days inside it are known."""
        with self._lock:
            self._listed = merged_spans([*self._listed, (start, end)])
            self._lock.notify_all()

    def plan_listing(
        self,
        start: datetime,
        end: datetime,
        aligned: Iterable[tuple[datetime, datetime]] = (),
        soon: datetime | None = None,
    ) -> None:
        """The `invoices` stream will list [start, end) in this sync, slot by slot within the
        `aligned` spans; what lies before `soon` it lists within its first windows."""
        with self._lock:
            self._planned = (start, end)
            self._aligned = list(aligned)
            self._soon = soon or start

    def planned_by_slot(self, slot: Slot, early: bool) -> bool:
        """Whether the `invoices` stream lists the slot with windows of its own (and, if
        `early`, within its first windows); never once it stopped."""
        with self._lock:
            if self._stopped or self._planned is None:
                return False
            if early and slot.start > self._soon:
                return False
            return any(low <= slot.start and slot.end <= high for low, high in self._aligned)

    def slot_listed(self, start: datetime, end: datetime, elements: Mapping[int, str]) -> None:
        """A listing window [start, end) that lies in one slot gave these invoices (fingerprint
        to id); the slot is known once such windows cover it, and then kept as it is."""
        slot = within_one_slot(start, end)
        if slot is None:
            return
        with self._lock:
            listing = self._slots.setdefault(slot, SlotListing(slot))
            if listing.complete:
                return
            listing.elements.update(elements)
            listing.covered = merged_spans([*listing.covered, (start, end)])
            covered = listing.covered
            listing.complete = (
                len(covered) == 1 and covered[0][0] <= slot.start and covered[0][1] >= slot.end
            )
            if listing.complete:
                self._lock.notify_all()

    def slot(self, slot: Slot) -> SlotListing | None:
        """The slot's complete listing, or None while it is not complete."""
        with self._lock:
            listing = self._slots.get(slot)
            return listing if listing is not None and listing.complete else None

    def unlisted_slots(self, slots: Iterable[Slot]) -> list[Slot]:
        """The slots, of those given, not completely listed yet."""
        with self._lock:
            return [slot for slot in slots if not self._complete(slot)]

    def _complete(self, slot: Slot) -> bool:
        listing = self._slots.get(slot)
        return listing is not None and listing.complete

    def wait_for_slots(self, slots: Iterable[Slot], timeout: float) -> bool:
        """Block until every slot is listed (True), or the listings end without them or
        `timeout` seconds pass (False)."""
        wanted = list(slots)
        deadline = monotonic() + timeout
        with self._lock:
            while not all(self._complete(slot) for slot in wanted):
                left = deadline - monotonic()
                if self._finished or left <= 0:
                    return False
                self._lock.wait(min(left, 1.0))
            return True

    def planned(self) -> tuple[datetime, datetime] | None:
        """What the `invoices` stream lists, unless it failed (then nobody will)."""
        with self._lock:
            return None if self._stopped else self._planned

    def stream_stopped(self, reason: str) -> None:
        """The `invoices` stream stopped (failed, or ended): what it did not list, another lists."""
        with self._lock:
            self._stopped = reason
            self._lock.notify_all()

    def finish(self) -> None:
        """Nothing more will be listed (the listing ended, or failed for good)."""
        with self._lock:
            self._finished = True
            self._lock.notify_all()

    @property
    def finished(self) -> bool:
        with self._lock:
            return self._finished

    def count(self, day: date) -> int | None:
        """The invoices of a day, or None while part of the day is not listed."""
        start, end = day_start(day), day_start(day + timedelta(days=1))
        with self._lock:
            if any(low <= start and end <= high for low, high in self._listed):
                return self._days[day]
            return None

    def known(self, first: date, last: date) -> list[int]:
        """The counts of first, first + 1, ... up to last or the first day not known."""
        counts = []
        day = first
        while day <= last:
            count = self.count(day)
            if count is None:
                break
            counts.append(count)
            day += timedelta(days=1)
        return counts

    def unlisted(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """The parts of [start, end) not listed yet."""
        with self._lock:
            gaps, cursor = [], start
            for low, high in self._listed:
                if high <= cursor or low >= end:
                    continue
                if low > cursor:
                    gaps.append((cursor, low))
                cursor = max(cursor, high)
            if cursor < end:
                gaps.append((cursor, end))
            return gaps

    def wait(self, timeout: float) -> None:
        """Block until something is listed, the listing ends, or `timeout` seconds pass."""
        with self._lock:
            if not self._finished:
                self._lock.wait(timeout)
