"""Date windows and the one date-time format the connector writes (UTC, second precision, Z)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from source_sp_invoices.config import DATE_FORMAT


def format_datetime(value: datetime) -> str:
    """A UTC date-time as YYYY-MM-DDTHH:MM:SSZ."""
    return value.astimezone(UTC).strftime(DATE_FORMAT)


def parse_datetime(value: str) -> datetime:
    """An ISO 8601 date-time (Z or offset, any precision) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def date_windows(
    start: datetime, end: datetime, size: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    """Consecutive half-open windows [a, b) of `size` covering [start, end); the last is shorter."""
    while start < end:
        stop = min(start + size, end)
        yield start, stop
        start = stop
