"""How far a documents stream is: days read, invoices, records, and what to expect.

A backfill runs at one export document a minute, so it can take hours: the stream says up front
how long, logs each window, estimates its total rows for Airbyte's progress bar from the records
per day read so far, and sums up at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import date

from source_sp_invoices.export_pipeline.windows import Window


def duration(seconds: float) -> str:
    """A duration as people read it: 45 s, 12 min, 3 h 05 min, 2 d 4 h."""
    seconds = max(0, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@dataclass
class Progress:
    """The days of one sync of a documents stream and what was read of them."""

    first: date
    last: date
    started: float = field(default_factory=time.monotonic)
    days_done: int = 0
    windows: int = 0
    invoices: int = 0
    records: int = 0
    skipped: int = 0  # days looked back at that are not exported again (nothing changed)

    @property
    def days(self) -> int:
        """The days this sync exports."""
        return max(0, (self.last - self.first).days + 1 - self.skipped)

    def window_done(self, window: Window, invoices: int, records: int) -> None:
        self.windows += 1
        self.days_done += (min(window.last, self.last) - max(window.first, self.first)).days + 1
        self.invoices += invoices
        self.records += records

    def row_estimate(self) -> int | None:
        """Rows of the whole sync at the rate of records per day read so far."""
        if not self.days_done:
            return None
        if self.days_done >= self.days:
            return self.records
        return max(self.records, round(self.records * self.days / self.days_done))

    def summary(self, stream: str) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"{stream}: done: {self.days_done} day(s) in {self.windows} window(s), "
            f"{self.invoices} invoice(s), {self.records} record(s), in {duration(elapsed)}."
        )
