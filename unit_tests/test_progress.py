"""What a documents stream says about its progress: the plan, estimates and the summary."""

from __future__ import annotations

from datetime import date

import pytest

from source_sp_invoices.export_pipeline.progress import Progress, duration
from source_sp_invoices.export_pipeline.windows import Window


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59, "59 s"),
        (59.2, "1 min"),
        (61, "2 min"),
        (3600, "1 h 00 min"),
        (3 * 86400, "3 d 0 h"),
    ],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert duration(seconds) == text


def test_the_row_estimate_extrapolates_the_records_per_day_read_so_far():
    progress = Progress(date(2024, 1, 1), date(2024, 1, 30))
    assert progress.row_estimate() is None  # nothing read yet: no guess
    progress.window_done(Window(date(2024, 1, 1), date(2024, 1, 3)), invoices=30, records=90)
    assert progress.row_estimate() == 900  # 90 records in 3 of 30 days
    progress.window_done(Window(date(2024, 1, 4), date(2024, 1, 30)), invoices=5, records=15)
    assert progress.row_estimate() == 105  # every day read: the exact count
    assert "30 day(s) in 2 window(s), 35 invoice(s), 105 record(s)" in progress.summary("s")


def test_a_window_reaching_past_the_sync_counts_only_its_days_in_the_sync():
    progress = Progress(date(2024, 1, 5), date(2024, 1, 6))
    progress.window_done(Window(date(2024, 1, 1), date(2024, 1, 7)), invoices=1, records=1)
    assert progress.days_done == 2 and progress.row_estimate() == 1
