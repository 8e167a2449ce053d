"""Windows of whole UTC days, as createInvoicesExport takes them, and how their size grows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True, order=True)
class Window:
    """A range of whole UTC days, both ends included, as createInvoicesExport takes them."""

    first: date
    last: date

    @property
    def key(self) -> str:
        return f"{self.first.isoformat()}/{self.last.isoformat()}"

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

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


def grown(days: int, ceiling: int) -> int:
    """The size of the next window: twice the last, up to the ceiling. A seller whose exports
    are one document needs few of them (the one-call-a-minute limit counts documents)."""
    return min(days * 2, ceiling)


def windows_needed(days: int, first_size: int, max_size: int) -> int:
    """The fewest windows that cover `days` when each export is one document: sizes start at
    `first_size` and double up to `max_size`, as the export pipeline grows them."""
    count, size, covered = 0, max(1, first_size), 0
    while covered < days:
        covered += size
        count += 1
        size = grown(size, max(1, max_size))
    return count
