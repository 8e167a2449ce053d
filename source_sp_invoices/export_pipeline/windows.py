"""Windows of whole UTC days, as createInvoicesExport takes them (planner.py chooses them)."""

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
