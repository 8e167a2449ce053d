"""Which delivered days the document streams export again, and which invoices they emit again.

An incremental sync looks `lookback_days` back for invoices that changed after they were
delivered (added late, canceled, rejected). Rather than export those days again every time, it
lists them with getInvoices (the listing that counts days for the plan, or the `invoices`
stream's own pages) slot by slot (changes/slots.py), and compares each slot with what was
delivered of it (changes/delivered.py): a day is exported again only when one of the slots its
export may hold changed, under either zone Amazon may read export days in. Of an export made
again, only the invoices that are new or changed are emitted; the invoices known unchanged are
not. Whatever cannot be told (a slot never compared, one getInvoices could not list, a
difference too large to peel) counts as changed: more is exported, never less.

Which zone Amazon reads export days in is learnt from the exports themselves: an export of days
D..E that holds invoices listed in [D 00:00Z, D 03:00Z) reads UTC days, one that holds invoices
listed in [E+1 00:00Z, E+1 03:00Z) reads Brazil's. Until two such invoices say the same and none
says the other, a change in the first three hours of a UTC day exports both days it may belong
to; once learnt (kept in the state as `exportDayZone`), only the one.

What was delivered of a slot is what getInvoices listed of it *before* the exports of its days
were created: anything that changed later shows as a change in the next sync. So each slot's
listing is taken ("pending") when the first export of one of its days is created, and becomes
"delivered" once every export of its days in this sync has been read; a killed sync keeps both
in its state, so that the export it left in flight is matched with the listing taken before it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from datetime import date, timedelta
from typing import Any

from source_sp_invoices.changes.delivered import (
    SlotRecord,
    compare,
    read_slot_records,
    write_slot_records,
)
from source_sp_invoices.changes.slots import BRAZIL_MIDNIGHT, Slot, slots_of_days
from source_sp_invoices.config import ConfigError
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.export_pipeline.windows import Window

UTC_DAYS, BRAZIL_DAYS = "UTC", "America/Sao_Paulo"  # how Amazon may read an export's days
ZONE_VOTES = 2  # invoices that must say a zone (and none the other) before it is taken

# How long the pass waits for getInvoices to list the slots it compares before it treats those
# still missing as changed (a listing that is alive lists a few slots in seconds).
COMPARE_WAIT_SECONDS = 1800.0


def read_records(stream: str, state: Mapping[str, Any]) -> tuple[dict, dict, str | None]:
    """The delivered and pending slot records of a document stream's saved state, and the zone
    of export days learnt (None: not known)."""
    zone = state.get("exportDayZone")
    if zone is not None and zone not in (UTC_DAYS, BRAZIL_DAYS):
        raise ConfigError(
            f"The saved state of stream `{stream}` has exportDayZone={zone!r}, which is not "
            f"{UTC_DAYS} or {BRAZIL_DAYS}. Fix the state or remove exportDayZone from it (it is "
            "learnt again)."
        )
    return (
        read_slot_records(stream, state, "delivered"),
        read_slot_records(stream, state, "pending"),
        zone,
    )


def merged(records: list[dict[Slot, SlotRecord]]) -> dict[Slot, SlotRecord]:
    """The records every stream agrees on (a stream reset since has none: nothing known)."""
    if not records:
        return {}
    first, *others = records
    return {
        slot: record
        for slot, record in first.items()
        if all(record.same(other.get(slot)) for other in others)
    }


class ChangedDays:
    """The comparison of one sync of the document streams: days to skip, invoices not to emit
    again, and the slot records of their state."""

    def __init__(
        self,
        *,
        enabled: bool,
        first: date,
        delivered_through: date | None,
        last: date,
        lookback_days: int,
        delivered: dict[Slot, SlotRecord],
        pending: dict[Slot, SlotRecord],
        zone: str | None,
        counts: InvoiceCounts | None,
        logger: logging.Logger,
        label: str,
    ) -> None:
        self.enabled = enabled and lookback_days > 0 and counts is not None
        self._first, self._last, self._lookback = first, last, lookback_days
        self._through = delivered_through  # every day up to it was delivered to every stream
        self._delivered = dict(delivered) if self.enabled else {}
        self._pending = dict(pending) if self.enabled else {}
        self._counts = counts
        self._logger = logger
        self._label = label
        self.skip: frozenset[date] = frozenset()
        self.unchanged: frozenset[str] = frozenset()  # invoice ids not to emit again
        self.zone = zone if self.enabled else None
        self._votes: Counter[str] = Counter()  # invoices that said a zone in this sync

    def days_of(self, slot: Slot) -> tuple[date, ...]:
        """The export days that may hold a slot: both zones' until one is learnt."""
        days = slot.export_days
        if len(days) == 1 or self.zone is None:
            return days
        brazil, utc = days
        return (utc,) if self.zone == UTC_DAYS else (brazil,)

    def window_read(self, window: Window, ids: Collection[str]) -> None:
        """The invoices read from a window's export: which zone its days are read in, told by
        the invoices of the slots at its edges (never by one listed in two slots: an instant
        on the boundary is in both)."""
        if not self.enabled or not ids:
            return
        assert self._counts is not None
        start = day_start(window.first)
        after = day_start(window.last + timedelta(days=1))
        edges = {
            UTC_DAYS: (
                Slot(start),
                [Slot(start - timedelta(hours=21)), Slot(start + BRAZIL_MIDNIGHT)],
            ),
            BRAZIL_DAYS: (
                Slot(after),
                [Slot(after - timedelta(hours=21)), Slot(after + BRAZIL_MIDNIGHT)],
            ),
        }
        for zone, (slot, neighbours) in edges.items():
            listing = self._counts.slot(slot)
            if listing is None:
                continue
            inside = set(listing.elements.values())
            for neighbour in neighbours:
                listed = self._counts.slot(neighbour)
                inside -= set(listed.elements.values()) if listed else set()
            self._votes[zone] += len(inside & set(ids))
        self._learn()

    def _learn(self) -> None:
        """Take a zone once ZONE_VOTES invoices say it and none the other; forget a known one
        once as many say the other (then both days are exported again, never a wrong one)."""
        votes = {UTC_DAYS: self._votes[UTC_DAYS], BRAZIL_DAYS: self._votes[BRAZIL_DAYS]}
        utc, brazil = votes[UTC_DAYS], votes[BRAZIL_DAYS]
        if self.zone is None:
            said = [zone for zone, n in votes.items() if n >= ZONE_VOTES and not min(utc, brazil)]
            if said:
                self.zone = said[0]
                self._logger.info(
                    f"{self._label}: Amazon's exports read their days as {self.zone} days "
                    f"({votes[self.zone]} invoice(s) at the edges of the windows say so): a "
                    "change in the first three hours of a UTC day is now exported with one "
                    "day, not two."
                )
            return
        other = BRAZIL_DAYS if self.zone == UTC_DAYS else UTC_DAYS
        if votes[other] >= ZONE_VOTES:
            self._logger.warning(
                f"{self._label}: the exports read hold invoices of both zones' edges ({utc} say "
                f"UTC, {brazil} Brazil): the zone of export days is not known any more, and a "
                "change in the first three hours of a UTC day exports both days it may belong to."
            )
            self.zone = None

    @property
    def compared(self) -> list[Slot]:
        """The slots of the delivered days this sync looks back at, and the first slot of the
        day after them (Brazil's reading puts it in the last of them)."""
        through = self._through
        if not self.enabled or through is None or through < self._first:
            return []
        return (
            slots_of_days(self._first, through)
            + slots_of_days(through + timedelta(days=1), through + timedelta(days=1))[:1]
        )

    @property
    def kept(self) -> list[Slot]:
        """The slots the next sync compares: of the last `lookback_days` days, and the first
        slot of the day after."""
        if not self.enabled or self._last < self._first:
            return []
        after = self._last + timedelta(days=1)
        first = max(self._first, after - timedelta(days=self._lookback))
        return slots_of_days(first, self._last) + slots_of_days(after, after)[:1]

    def decide(self, in_flight: Iterable[Window]) -> None:
        """Compare the delivered days with what getInvoices lists of them now (waiting for the
        listing), and say what is exported and emitted again. Days with an export in flight
        from a killed sync are never skipped: that export is read on."""
        compared = self.compared
        if not compared:
            return
        assert self._counts is not None and self._through is not None
        listed = self._counts.wait_for_slots(compared, COMPARE_WAIT_SECONDS)
        if not listed:
            missing = self._counts.unlisted_slots(compared)
            self._logger.warning(
                f"{self._label}: getInvoices did not list {len(missing)} slot(s) of the days "
                f"looked back at (from {missing[0]}): those days are exported again in full, "
                "as if they had changed."
            )
        candidates: set[date] = set()
        unchanged: set[str] = set()
        changed_ids: set[str] = set()
        told = 0
        for slot in compared:
            listing = self._counts.slot(slot)
            if listing is None:
                candidates.update(self.days_of(slot))
                continue
            comparison = compare(self._delivered.get(slot), listing.elements.keys())
            whole = max(self.days_of(slot)) <= self._through  # every export it may be in was
            if comparison.new is None:
                changed_ids |= set(listing.elements.values())
            else:
                new = comparison.new
                told += len(new)
                changed_ids |= listing.ids(new)
                if whole:
                    unchanged |= listing.ids(listing.elements.keys() - new)
            if comparison.changed:
                candidates.update(self.days_of(slot))
        days = {
            self._first + timedelta(days=n) for n in range((self._through - self._first).days + 1)
        }
        flight = {w.first + timedelta(days=n) for w in in_flight for n in range(w.days)}
        again = (candidates & days) | (flight & days)
        self.skip = frozenset(days - again)
        self.unchanged = frozenset(unchanged - changed_ids)
        self._logger.info(self._summary(days, again, told))

    def _summary(self, days: set[date], again: set[date], told: int) -> str:
        looked = f"{min(days)}..{max(days)}"
        if not again:
            return (
                f"{self._label}: nothing changed in the {len(days)} day(s) looked back at "
                f"({looked}) since they were delivered: none is exported again."
            )
        shown = ", ".join(str(day) for day in sorted(again))
        return (
            f"{self._label}: of the {len(days)} day(s) looked back at ({looked}), "
            f"{len(again)} changed since they were delivered and are exported again ({shown}; "
            f"{told} invoice(s) new or changed, told apart from the unchanged ones, which are "
            "not emitted again); the others are not exported again."
        )

    def export_created(self, window: Window) -> None:
        """An export of the window was created: take the listing of each slot its days may hold,
        unless one was taken before (an older listing precedes this export too)."""
        if not self.enabled:
            return
        assert self._counts is not None
        days = {window.first + timedelta(days=n) for n in range(window.days)}
        for slot in {*self.compared, *self.kept}:
            if slot in self._pending or not days & set(slot.export_days):  # either zone's
                continue
            listing = self._counts.slot(slot)
            if listing is not None:
                self._pending[slot] = SlotRecord.of(listing.elements.keys())

    def state(self, resume: date | None, through: date | None) -> dict[str, Any]:
        """The slot records for a state written when every day before `resume` (all days, if
        None) has been read, and the cursor is at `through`."""
        if not self.enabled:
            return {}
        for slot, record in list(self._pending.items()):
            days = [d for d in self.days_of(slot) if self._first <= d <= self._last]
            if all(day in self.skip or (resume is None or day < resume) for day in days):
                self._delivered[slot] = record
                del self._pending[slot]
        if through is not None:
            oldest = through + timedelta(days=1 - self._lookback)
            self._delivered = {s: r for s, r in self._delivered.items() if s.day >= oldest}
            self._pending = {s: r for s, r in self._pending.items() if s.day >= oldest}
        state: dict[str, Any] = {}
        if self._delivered:
            state["delivered"] = write_slot_records(self._delivered)
        if self._pending:
            state["pending"] = write_slot_records(self._pending)
        if self.zone is not None:
            state["exportDayZone"] = self.zone
        return state
