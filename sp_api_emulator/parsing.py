"""Parsing of ISO 8601 date-times as the Invoices API accepts them.

Shared by the server (query parameters) and the truth queries, so both read a date the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime


def parse_datetime(text: str) -> datetime:
    """Parse an ISO 8601 date-time (with or without Z, offset or fraction); return it in UTC.

    A value without an offset is UTC. A bare date is refused: the API wants a date-time.
    """
    if "T" not in text.upper():
        raise ValueError(f"{text!r} is not an ISO 8601 date-time (expected YYYY-MM-DDThh:mm:ssZ)")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date-time (expected YYYY-MM-DDThh:mm:ssZ)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
