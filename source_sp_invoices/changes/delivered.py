"""What a stream delivered of each recent slot, as its state keeps it, and what changed since.

A stream's state holds, under one key, a record per slot of the recent days: how many invoices
the slot held, their sketch (sketch.py), and, for a slot listed only up to some instant (the
`invoices` stream's last, still open slot), that instant. A later sync lists the slot again
and compares: nothing new or changed, the invoices that are, or "cannot tell" (then all of
them count as changed: more is exported and emitted, never less).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from source_sp_invoices.changes.sketch import Sketch
from source_sp_invoices.changes.slots import Slot
from source_sp_invoices.config import ConfigError
from source_sp_invoices.dates import format_datetime, parse_datetime


@dataclass
class SlotRecord:
    """A slot's invoices as delivered: how many, their sketch, and up to when (None: whole)."""

    invoices: int
    sketch: Sketch
    until: datetime | None = None

    @classmethod
    def of(cls, elements: Collection[int], until: datetime | None = None) -> SlotRecord:
        return cls(len(elements), Sketch.of(elements), until)

    def extended(self, elements: Collection[int], until: datetime | None) -> SlotRecord:
        """This record with more of the slot listed after it (up to `until`)."""
        sketch = self.sketch.copy()
        sketch.add(elements)
        return SlotRecord(self.invoices + len(elements), sketch, until)

    def to_state(self) -> dict[str, Any]:
        saved: dict[str, Any] = {"invoices": self.invoices, "sketch": self.sketch.encode()}
        if self.until is not None:
            saved["until"] = format_datetime(self.until)
        return saved

    def same(self, other: SlotRecord | None) -> bool:
        return other is not None and self.to_state() == other.to_state()


@dataclass(frozen=True)
class Comparison:
    """What changed in a slot since it was delivered. `new`: the elements listed now that were
    not delivered (new or changed invoices); None when that cannot be told (all count as
    changed)."""

    new: frozenset[int] | None

    @property
    def changed(self) -> bool:
        return self.new is None or bool(self.new)


def compare(record: SlotRecord | None, current: Collection[int]) -> Comparison:
    """The slot listed now against what was delivered of it (None: nothing known)."""
    if record is None:
        return Comparison(None)
    new = record.sketch.new_since(current, record.invoices)  # empty when nothing differs
    return Comparison(None if new is None else frozenset(new))


def read_slot_records(stream: str, state: Mapping[str, Any], key: str) -> dict[Slot, SlotRecord]:
    """The slot records under `key` of a saved state, or a config error naming what is wrong."""
    saved = state.get(key, {})
    records: dict[Slot, SlotRecord] = {}
    try:
        if not isinstance(saved, dict):
            raise ValueError("not a map")
        for slot_key, value in saved.items():
            if not isinstance(value, dict) or set(value) - {"invoices", "sketch", "until"}:
                raise ValueError(slot_key)
            invoices = value.get("invoices")
            if isinstance(invoices, bool) or not isinstance(invoices, int) or invoices < 0:
                raise ValueError(slot_key)
            until = value.get("until")
            records[Slot.from_key(slot_key)] = SlotRecord(
                invoices,
                Sketch.decode(value["sketch"]),
                None if until is None else parse_datetime(until),
            )
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeError):
        raise ConfigError(
            f"The saved state of stream `{stream}` has {key}={_short(saved)}, which is not a map "
            'of slots ("YYYY-MM-DDTHH", HH 00 or 03) to {"invoices": n, "sketch": "...", '
            '"until": optional date-time} as this connector writes it. Fix the state, remove '
            f"{key} from it (the next sync then exports and emits the days it looks back at "
            "once more) or reset the stream."
        ) from None
    return records


def write_slot_records(records: Mapping[Slot, SlotRecord]) -> dict[str, Any]:
    return {slot.key: records[slot].to_state() for slot in sorted(records)}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
