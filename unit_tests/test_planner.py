"""Export windows planned from each day's invoices: the plan, the counts it reads, and the
documents a whole pipeline fetches on quiet, year-like, busy and dense sellers."""

from __future__ import annotations

import itertools
import logging
import math
import random
from datetime import UTC, date, datetime, timedelta

import pytest

from source_sp_invoices import settings
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.export_pipeline.planner import (
    DocumentSize,
    WindowPlanner,
    documents_for,
    fitted_plan,
)
from source_sp_invoices.export_pipeline.windows import Window, day_windows
from unit_tests.test_exports import DayApi, pipeline_for, run

logger = logging.getLogger("test")
FIRST = date(2024, 1, 1)


def counted(days: dict[date, int], through: date | None = None) -> InvoiceCounts:
    """Counts of `days`, listed from the first day to `through` (all of them by default)."""
    counts = InvoiceCounts()
    for day, count in days.items():
        for _ in range(count):
            counts.add(day_start(day) + timedelta(hours=12))
    last = through or max(days)
    counts.listed(day_start(min(days)), day_start(last + timedelta(days=1)))
    return counts


def per_day(values: list[int]) -> dict[date, int]:
    return {FIRST + timedelta(days=n): value for n, value in enumerate(values)}


# The dynamic programme against every way of cutting a few days into windows.


def brute_force(counts, per_document, margin, max_documents, max_days):
    days = len(counts)
    best = None
    for cuts in itertools.product([False, True], repeat=days - 1):
        bounds = [0] + [n + 1 for n, cut in enumerate(cuts) if cut] + [days]
        windows = list(zip(bounds, bounds[1:], strict=False))
        if any(max_days and high - low > max_days for low, high in windows):
            continue
        documents = [documents_for(sum(counts[lo:hi]), per_document, margin) for lo, hi in windows]
        if any(
            d > max_documents and hi - lo > 1
            for d, (lo, hi) in zip(documents, windows, strict=True)
        ):
            continue
        score = (sum(documents), len(windows))
        if best is None or score < best:
            best = score
    return best


@pytest.mark.parametrize("seed", range(40))
def test_the_plan_takes_the_fewest_documents_then_the_fewest_windows(seed):
    rng = random.Random(seed)
    days = rng.randint(1, 9)
    counts = [rng.choice([0, rng.randint(1, 30), rng.randint(30, 90)]) for _ in range(days)]
    per_document = rng.randint(5, 40)
    margin = rng.randint(0, 3)
    max_documents = rng.randint(1, 6)
    max_days = rng.choice([None, 2, 4])
    first, documents = fitted_plan(counts, per_document, margin, max_documents, max_days)
    assert documents == brute_force(counts, per_document, margin, max_documents, max_days)[0]
    assert 1 <= first <= days and (max_days is None or first <= max_days)


def test_windows_of_whole_documents_beat_one_window_a_day():
    # 30 invoices a day, documents of 40: a day alone wastes a quarter of its document, four
    # days are exactly three documents.
    first, documents = fitted_plan([30] * 8, 40, 0, 10, None)
    assert documents == 6 and 8 % first == 0 and (30 * first) % 40 == 0


def test_a_margin_keeps_windows_below_each_multiple():
    # Without a margin, 40 invoices fill one document exactly; with one, they would not.
    assert fitted_plan([20, 20, 20, 20], 40, 0, 10, 2) == (2, 2)
    assert fitted_plan([20, 20, 20, 20], 40, 1, 10, 2)[1] == 4


# The planner's choices.


def test_nothing_known_plans_one_day_then_a_probe_then_waits_for_what_it_says():
    last = FIRST + timedelta(399)
    planner = WindowPlanner(counted(per_day([50] * 400)), logger, DocumentSize())
    first = planner.plan(FIRST, last, urgent=True)
    assert first.window == Window(FIRST, FIRST) and not first.probe
    probe = planner.plan(FIRST + timedelta(1), last, urgent=False)
    assert probe.probe and probe.invoices == settings.PROBE_INVOICES  # 40 days of 50
    assert probe.window.days == settings.PROBE_INVOICES // 50
    after = probe.window.last + timedelta(1)
    assert planner.plan(after, last, urgent=False) is None  # the probe says M soon
    planner.export_done(probe.window, 3, probe.invoices)
    planner.document_read(probe.window, 800, 3)  # its first document is full
    assert planner.size == DocumentSize(exact=800, at_least=800)
    fitted = planner.plan(after, last, urgent=False)
    margin = planner.margin()
    # as many whole documents as an export may hold, each as full as the margin allows
    assert documents_for(fitted.invoices, 800, margin) == settings.MAX_DOCUMENTS_PER_EXPORT
    assert fitted.invoices > 800 * settings.MAX_DOCUMENTS_PER_EXPORT - margin - 50


def test_a_window_size_saved_by_0_4_0_is_the_first_window_when_nothing_else_is_known():
    planner = WindowPlanner(counted(per_day([5] * 20)), logger, DocumentSize(), first_days=8)
    assert planner.plan(FIRST, FIRST + timedelta(19), urgent=True).window.days == 8


def test_an_export_of_one_document_says_m_is_at_least_its_invoices():
    last = FIRST + timedelta(399)
    planner = WindowPlanner(counted(per_day([50] * 400)), logger, DocumentSize())
    planner.plan(FIRST, FIRST, urgent=True)
    probe = planner.plan(FIRST + timedelta(1), last, urgent=False)
    planner.export_done(probe.window, 1, probe.invoices)
    assert planner.size.at_least == settings.PROBE_INVOICES
    nxt = planner.plan(probe.window.last + timedelta(1), last, urgent=False)
    assert nxt.probe and nxt.invoices == settings.PROBE_GROWTH * settings.PROBE_INVOICES


def test_with_m_known_the_planner_waits_for_counts_unless_documents_would_wait():
    days = per_day([100] * 60)
    counts = counted(days, through=FIRST + timedelta(4))  # five days listed of sixty
    planner = WindowPlanner(counts, logger, DocumentSize(exact=300))
    assert planner.plan(FIRST, FIRST + timedelta(59), urgent=False) is None
    urgent = planner.plan(FIRST, FIRST + timedelta(59), urgent=True)
    assert urgent.window.days in (3, 5) and urgent.invoices == 100 * urgent.window.days
    counts.listed(day_start(FIRST), day_start(FIRST + timedelta(60)))  # zero for the others
    planned = planner.plan(FIRST, FIRST + timedelta(59), urgent=False)
    margin = planner.margin()
    assert documents_for(planned.invoices, 300, margin) == settings.MAX_DOCUMENTS_PER_EXPORT
    assert planned.invoices + margin > 3000 - 100  # the fullest ten documents days allow


def test_windows_hold_at_most_the_documents_of_a_lost_export_and_the_longest_range():
    planner = WindowPlanner(counted(per_day([100] * 365)), logger, DocumentSize(exact=1000))
    planned = planner.plan(FIRST, FIRST + timedelta(364), urgent=False)
    most = 1000 * settings.MAX_DOCUMENTS_PER_EXPORT
    assert most - 100 <= planned.invoices <= most - planner.margin()
    assert planner.refused(100) == 50
    assert planner.plan(FIRST, FIRST + timedelta(364), urgent=False).window.days <= 50


def test_the_margin_grows_with_how_far_the_counts_were_off():
    planner = WindowPlanner(counted(per_day([100] * 10)), logger, DocumentSize(exact=1000))
    assert planner.margin() == int(1000 * settings.COUNT_MARGIN_SHARE)
    window = Window(FIRST, FIRST + timedelta(1))
    planner.window_read(window, 230, 1)  # counted 200
    assert planner.margin() == 45


def test_fewer_invoices_a_document_than_m_is_learnt_from_a_split_that_m_does_not_explain():
    planner = WindowPlanner(counted(per_day([100] * 10)), logger, DocumentSize(exact=500))
    window = Window(FIRST, FIRST + timedelta(4))
    for _ in range(2):
        planner.document_read(window, 250, 2)
    planner.window_read(window, 500, 2)
    assert planner.size.exact == 250


def test_without_counts_windows_follow_the_density_read_so_far():
    counts = InvoiceCounts()
    counts.finish()  # the listing failed: nothing will be counted
    planner = WindowPlanner(counts, logger, DocumentSize(exact=100))
    planner.window_read(Window(FIRST, FIRST + timedelta(9)), 200, 2)  # 20 a day
    planned = planner.plan(FIRST + timedelta(10), FIRST + timedelta(200), urgent=False)
    assert planned.window.days == 100 * settings.MAX_DOCUMENTS_PER_EXPORT // 20
    assert planned.invoices is None


def test_one_day_windows_never_wait():
    planner = WindowPlanner(InvoiceCounts(), logger, DocumentSize(), max_days=1)
    for n in range(3):
        assert (
            planner.plan(FIRST + timedelta(n), FIRST + timedelta(9), urgent=False).window.days == 1
        )


# The counts.


def test_a_day_is_counted_once_the_whole_day_is_listed():
    counts = InvoiceCounts()
    counts.add(datetime(2024, 1, 1, 10, tzinfo=UTC))
    counts.listed(day_start(FIRST), datetime(2024, 1, 1, 12, tzinfo=UTC))
    assert counts.count(FIRST) is None
    counts.listed(datetime(2024, 1, 1, 12, tzinfo=UTC), day_start(FIRST + timedelta(2)))
    assert counts.count(FIRST) == 1 and counts.count(FIRST + timedelta(1)) == 0
    assert counts.known(FIRST, FIRST + timedelta(5)) == [1, 0]
    end = day_start(FIRST + timedelta(5))
    assert counts.unlisted(day_start(FIRST), end) == [(day_start(FIRST + timedelta(2)), end)]


def test_what_the_invoices_stream_lists_is_nobody_elses_until_it_stops():
    counts = InvoiceCounts()
    span = (day_start(FIRST), day_start(FIRST + timedelta(7)))
    counts.plan_listing(*span)
    assert counts.planned() == span
    counts.stream_stopped("failed")
    assert counts.planned() is None


# A whole pipeline: documents fetched against the floor on several shapes of seller.


def documents_fetched(days: dict[date, int], per_document: int, size=None, counts=True):
    api = DayApi(days, per_document)
    windows = day_windows(min(days), max(days), 1)
    pipeline = pipeline_for(
        api, windows, counts=counted(days) if counts else None, size=size, max_days=None
    )
    invoices, _ = run(pipeline)
    assert sorted(invoices) == sorted(f"{day}-{i}" for day, n in days.items() for i in range(n))
    return len(api.downloads), len(api.created)


SHAPES = {
    "quiet (60 days of 2)": ([2] * 60, 500),
    "year-like (about 10 % of M a day)": ("year", 500),
    "busy (50 to 100 % of M a day)": ("busy", 500),
    "dense (every day over M)": ("dense", 40),
}


def shape(name: str) -> tuple[dict[date, int], int]:
    values, per_document = SHAPES[name]
    rng = random.Random(name)
    if values == "year":
        values = [rng.randint(0, 110) for _ in range(365)]
    elif values == "busy":
        values = [rng.randint(250, 500) for _ in range(120)]
    elif values == "dense":
        values = [rng.randint(41, 60) for _ in range(10)]
    return per_day(values), per_document


@pytest.mark.parametrize("name", SHAPES)
def test_a_backfill_fetches_close_to_one_document_per_m_invoices(name):
    days, per_document = shape(name)
    floor = math.ceil(sum(days.values()) / per_document)
    fetched, _ = documents_fetched(days, per_document)
    assert fetched <= 1.05 * floor + 1, (fetched, floor)


@pytest.mark.parametrize("name", SHAPES)
def test_with_m_known_a_backfill_fetches_at_most_one_document_more_than_the_floor(name):
    days, per_document = shape(name)
    floor = math.ceil(sum(days.values()) / per_document)
    fetched, _ = documents_fetched(days, per_document, size=DocumentSize(exact=per_document))
    assert fetched <= 1.02 * floor + 1, (fetched, floor)


class BrazilDayApi(DayApi):
    """Exports of Brazil's days: a window holds its days' invoices but the first `early` of its
    first day (issued before 03:00 UTC), and the first `early` of the day after it."""

    def __init__(self, counts: dict[date, int], per_document: int, early: int) -> None:
        super().__init__(counts, per_document)
        self.early = early

    def create_export(self, window: Window) -> str:
        export_id = super().create_export(window)
        after = window.last + timedelta(1)
        invoices = [
            f"{day}-{i}"
            for day in (window.first + timedelta(n) for n in range(window.days))
            for i in range(self.counts.get(day, 0))
            if i >= self.early or day != window.first or day == min(self.counts)
        ] + [f"{after}-{i}" for i in range(min(self.early, self.counts.get(after, 0)))]
        for key in [k for k in self.documents if k.startswith(window.key + "#")]:
            del self.documents[key]
        size = self.per_document
        chunks = [invoices[i : i + size] for i in range(0, len(invoices), size)]
        for n, chunk in enumerate(chunks or [[]]):
            self.documents[f"{window.key}#{n}"] = chunk
        return export_id


@pytest.mark.parametrize("early", [0, 20, 60])
def test_counts_that_are_off_at_the_edges_of_windows_cost_documents_not_invoices(early):
    """The counts are UTC days, the exports Brazil's: every invoice is read once, and the
    plan keeps the error it saw below each multiple of M."""
    days, per_document = shape("busy (50 to 100 % of M a day)")
    api = BrazilDayApi(days, per_document, early)
    pipeline = pipeline_for(
        api, day_windows(min(days), max(days), 1), counts=counted(days), max_days=None
    )
    invoices, _ = run(pipeline)
    truth = sum(days.values())
    assert len(invoices) == len(set(invoices)) == truth
    assert len(api.downloads) <= 1.05 * math.ceil(truth / per_document) + 1


def test_an_incremental_sync_with_m_known_exports_its_days_in_the_fewest_documents():
    days = per_day([274, 301, 250, 288])  # the lookback and a new day of a busy seller
    fetched, created = documents_fetched(days, 500, size=DocumentSize(exact=500))
    assert fetched == math.ceil(sum(days.values()) / 500) and created == 1
