"""The grid of time that change detection keeps records by, and the getInvoices windows that
follow it.

An export of day D holds the invoices of [D 00:00Z, D+1 00:00Z) when Amazon reads its bare dates
as UTC days, and of [D 03:00Z, D+1 03:00Z) when it reads them as Brazil's (the model says
neither; DESIGN §9). Cutting every day at 00:00Z and 03:00Z gives slots that each lie in one
export day under either reading: [D 00:00Z, D 03:00Z) belongs to day D in UTC and to day D-1 in
Brazil, [D 03:00Z, D+1 00:00Z) to day D in both. A slot is attributed by the getInvoices window
that listed it, never by the records' `date`: getInvoices and the exports may both filter on the
"invoice creation date" the model names, which no record shows, so only a window that lies in
one slot says which export holds what it lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

BRAZIL_MIDNIGHT = timedelta(hours=3)  # 00:00 in Brazil (UTC-3 all year since 2019) is 03:00Z


@dataclass(frozen=True, order=True)
class Slot:
    """[start, end) of one UTC day: its first three hours, or the rest."""

    start: datetime

    @property
    def end(self) -> datetime:
        if self.start.time() == time.min:
            return self.start + BRAZIL_MIDNIGHT
        return datetime.combine(self.day + timedelta(days=1), time.min, UTC)

    @property
    def day(self) -> date:
        """The UTC day it lies in."""
        return self.start.date()

    @property
    def key(self) -> str:
        return self.start.strftime("%Y-%m-%dT%H")

    @classmethod
    def from_key(cls, key: str) -> Slot:
        """A slot from its key, YYYY-MM-DDTHH with HH 00 or 03 (ValueError otherwise)."""
        start = datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        if start.hour not in (0, 3) or start.strftime("%Y-%m-%dT%H") != key:
            raise ValueError(key)  # not the start of a slot (00 or 03 hours UTC)
        return cls(start)

    @property
    def export_days(self) -> tuple[date, ...]:
        """The days whose export holds it: under UTC's reading, then Brazil's, if another."""
        if self.start.time() == time.min:
            return (self.day - timedelta(days=1), self.day)
        return (self.day,)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}..{self.end:%H:%M}Z"


def slot_of(instant: datetime) -> Slot:
    """The slot holding an instant."""
    instant = instant.astimezone(UTC)
    midnight = datetime.combine(instant.date(), time.min, UTC)
    start = midnight if instant < midnight + BRAZIL_MIDNIGHT else midnight + BRAZIL_MIDNIGHT
    return Slot(start)


def slot_floor(instant: datetime) -> datetime:
    """The start of the slot holding an instant."""
    return slot_of(instant).start


def slots_between(start: datetime, end: datetime) -> list[Slot]:
    """Every slot that overlaps [start, end)."""
    slots = []
    slot = slot_of(start)
    while slot.start < end:
        slots.append(slot)
        slot = Slot(slot.end)
    return slots


def slots_of_days(first: date, last: date) -> list[Slot]:
    """The slots of the UTC days first..last."""
    if last < first:
        return []
    return slots_between(
        datetime.combine(first, time.min, UTC), datetime.combine(last + timedelta(1), time.min, UTC)
    )


def within_one_slot(start: datetime, end: datetime) -> Slot | None:
    """The slot [start, end) lies in, if it lies in one."""
    slot = slot_of(start)
    return slot if end <= slot.end else None


def listing_windows(
    begin: datetime,
    end: datetime,
    size: timedelta,
    aligned: Iterable[tuple[datetime, datetime]] = (),
    cuts: Iterable[datetime] = (),
) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive windows [a, b) covering [begin, end): inside the `aligned` spans, cut at
    every slot boundary and at every instant of `cuts` (each then lies in one slot); elsewhere
    windows of `size`, which never cross into an aligned span."""
    spans = merged_spans((max(low, begin), min(high, end)) for low, high in aligned)
    points = sorted({cut for cut in cuts if begin < cut < end})
    cursor = begin
    for low, high in [*spans, (end, end)]:
        while cursor < low:  # before the next aligned span
            stop = min(cursor + size, low)
            yield cursor, stop
            cursor = stop
        while cursor < high:
            stop = min(Slot(slot_floor(cursor)).end, high)
            stop = min([stop, *(point for point in points if cursor < point < stop)])
            yield cursor, stop
            cursor = stop


def merged_spans(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Spans [low, high) sorted, the empty ones left out and those that touch or overlap made
    one."""
    merged: list[tuple[datetime, datetime]] = []
    for low, high in sorted(span for span in spans if span[0] < span[1]):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged
