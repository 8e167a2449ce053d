"""Date windows cover a range exactly, and date-times round-trip in one format."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from source_sp_invoices.dates import date_windows, format_datetime, parse_datetime


def test_windows_cover_the_range_without_gaps_or_overlaps():
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 10, 12, tzinfo=UTC)
    windows = list(date_windows(start, end, timedelta(days=3)))
    assert windows[0][0] == start and windows[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:], strict=False))
    assert [b - a for a, b in windows] == [timedelta(days=3)] * 3 + [timedelta(hours=12)]


def test_an_empty_range_has_no_window():
    moment = datetime(2024, 1, 1, tzinfo=UTC)
    assert list(date_windows(moment, moment, timedelta(days=1))) == []


def test_date_times_are_parsed_in_any_iso_form_and_written_in_one():
    assert parse_datetime("2024-07-10T15:00:00.000Z") == datetime(2024, 7, 10, 15, tzinfo=UTC)
    assert parse_datetime("2024-07-10T12:00:00-03:00") == datetime(2024, 7, 10, 15, tzinfo=UTC)
    assert parse_datetime("2024-07-10T15:00:00") == datetime(2024, 7, 10, 15, tzinfo=UTC)
    assert format_datetime(parse_datetime("2024-07-10T12:00:00-03:00")) == "2024-07-10T15:00:00Z"
