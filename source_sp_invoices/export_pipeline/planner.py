"""Export windows planned so that their documents come out full.

getInvoicesDocument allows one call a minute, and an export of n invoices gives ceil(n / M)
documents, M being the most invoices one document holds (Amazon's; the model does not say it).
A backfill of N invoices cannot take fewer than ceil(N / M) documents; what it takes more is the
partly filled last document of each window, not a split: a window of 2M invoices is two full
documents. So the planner wants windows whose invoices come close to a multiple of M from below,
and few of them.

What it knows:
- the invoices of each day ahead, from getInvoices with the export's filters (InvoiceCounts);
- M: the fullest document of an export that split (every document but the last is full); until
  an export splits, only that M is at least the fullest document seen. Both are kept in the
  stream's state, so later syncs start knowing them;
- how far the counts were off in the windows already read (getInvoices may filter on another
  date than the export, Amazon may read export days in Brazil's time): plans keep that margin
  below each multiple of M, so that a count that is off costs at most a partly filled document.

Before M is known, the first window is small, as before planning existed (its document comes
first), and the next one is a probe of many invoices: it splits, and its fullest document says
M. Windows never span more days than documents_window_days or the longest range Amazon accepts
(searched for from its 400s: halfway between the longest range it took and the shortest it
refused), nor hold more than MAX_DOCUMENTS_PER_EXPORT documents, so that an export Amazon loses
costs little to export again.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import date, timedelta

from source_sp_invoices import settings
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts
from source_sp_invoices.export_pipeline.windows import Window


@dataclass
class DocumentSize:
    """What is known of M, the most invoices one export document holds."""

    exact: int | None = None  # the fullest document of an export that split
    # A lower bound of M: the most invoices one document held, or a DONE export's count over
    # its documents.
    at_least: int = 0

    def usable(self) -> int | None:
        """M, or the best lower bound of it (0: nothing known)."""
        return self.exact or self.at_least or None


@dataclass(frozen=True)
class Planned:
    """A window to export and the invoices its days were counted to hold (None: not counted)."""

    window: Window
    invoices: int | None
    probe: bool = False  # planned before M was known, to learn it


def documents_for(invoices: int, per_document: int, margin: int = 0) -> int:
    """The documents of an export of `invoices` (an empty export has none), with `margin` more
    invoices than counted."""
    return math.ceil((invoices + margin) / per_document) if invoices else 0


def fitted_plan(
    counts: list[int],
    per_document: int,
    margin: int,
    max_documents: int,
    max_days: int | None,
    open_end: bool = False,
) -> tuple[int, float]:
    """The plan that exports the counted days in the fewest documents (then the fewest
    windows), each window of at most `max_days` days and `max_documents` documents (a single
    day may hold more): the days of its first window, and its documents in all.

    `open_end`: the counts stop before the days to export do, so the last window of the plan
    is not the last one: it costs its invoices' share of documents, not whole documents, and
    the plan wastes nothing on it (what it leaves is planned again with the days after it)."""
    days = len(counts)
    prefix = [0]
    for count in counts:
        prefix.append(prefix[-1] + count)
    best: list[tuple[float, int]] = [(0.0, 0)] + [(math.inf, 0)] * days
    cut = [0] * (days + 1)
    for end in range(1, days + 1):
        for begin in range(end - 1, -1, -1):
            length = end - begin
            if max_days is not None and length > max_days:
                break
            invoices = prefix[end] - prefix[begin]
            documents = documents_for(invoices, per_document, margin)
            if documents > max_documents and length > 1:
                break
            cost = invoices / per_document if open_end and end == days else documents
            candidate = (best[begin][0] + cost, best[begin][1] + 1)
            if candidate < best[end]:
                best[end], cut[end] = candidate, begin
    end = days
    while cut[end] > 0:
        end = cut[end]
    return end, best[days][0]


class WindowPlanner:
    """Chooses each export window from the counts, M and the limits of the date range."""

    def __init__(
        self,
        counts: InvoiceCounts | None,
        logger: logging.Logger,
        size: DocumentSize,
        max_days: int | None = None,
        first_days: int = 1,
    ) -> None:
        self.counts = counts
        self._logger = logger
        self.size = size
        self._limit = max_days  # documents_window_days, or the longest range an earlier sync kept
        self._accepted = 0  # the longest range Amazon took in this sync
        self._refused: int | None = None  # the shortest range it refused as too long
        self._first_days = max(1, first_days)
        self._planned = 0  # windows planned in this sync
        # The first day of a probe whose documents have not said M yet (a day, not a window: a
        # refused range shortens the window, not the probe).
        self._probing: date | None = None
        self._errors: list[int] = []  # read minus counted invoices of the windows read
        self._last_days = self._first_days  # the days of the last window planned
        self._read_days = 0
        self._read_invoices = 0
        self._fullest: dict[Window, int] = {}  # the fullest document of each window being read
        self._fitted: tuple[tuple[object, ...], int] | None = None  # the last plan, reused

    # What the pipeline tells.

    @property
    def max_days(self) -> int | None:
        """The longest window to plan: the limit given, and, once Amazon refused a range, the
        middle between the longest it took and the shortest it refused (a search that ends at
        the longest range Amazon takes, at one refused export each step)."""
        if self._refused is None:
            return self._limit
        trial = max(1, self._accepted, (self._accepted + self._refused) // 2)
        return trial if self._limit is None else min(self._limit, trial)

    @property
    def longest_range(self) -> int | None:
        """The longest range Amazon took, once it refused a longer one (for the state)."""
        return (self._accepted or None) if self._refused is not None else None

    def refused(self, days: int) -> int:
        """Amazon refused a range of `days` days as too long: the days to try instead."""
        self._refused = min(days, self._refused or days)
        self._accepted = min(self._accepted, days - 1)
        return min(days - 1, self.max_days or 1)

    def created(self, window: Window) -> None:
        """Amazon took an export of the window's range."""
        self._accepted = max(self._accepted, window.days)

    def export_done(self, window: Window, documents: int, counted: int | None) -> None:
        """An export whose days were counted to hold `counted` invoices is DONE with
        `documents` documents: M is at least the count over the documents (less the margin of
        error of the counts), before any of them is read."""
        if documents and counted:
            least = math.ceil(max(0, counted - self.margin()) / documents)
            self.size.at_least = max(self.size.at_least, least)
        if self._probing == window.first and documents <= 1:
            self._probing = None

    def document_read(self, window: Window, invoices: int, documents: int) -> None:
        """A document of an export of `documents` documents held `invoices` invoices."""
        size = self.size
        size.at_least = max(size.at_least, invoices)
        self._fullest[window] = max(self._fullest.get(window, 0), invoices)
        if documents > 1 and invoices > (size.exact or 0):
            if size.exact is None:
                self._logger.info(
                    f"Window {window} was split into {documents} documents of up to {invoices} "
                    "invoices: export windows are now planned to fill documents of "
                    f"{invoices} invoices."
                )
            size.exact = invoices
        if size.exact:
            self._probing = None

    def window_read(self, window: Window, invoices: int, documents: int) -> None:
        """A window was read to its end: how far its count was off, and whether M shrank."""
        counted = self.expected_invoices(window)
        if counted is not None:
            self._errors.append(invoices - counted)
        self._read_days += window.days
        self._read_invoices += invoices
        exact = self.size.exact
        fullest = self._fullest.pop(window, 0)
        if exact and documents > max(1, documents_for(invoices, exact)) and fullest:
            # More documents than M explains: Amazon holds fewer invoices a document now.
            self.size.exact = fullest
            self._logger.warning(
                f"Window {window}: {invoices} invoice(s) came in {documents} documents: "
                f"planning documents of {self.size.exact} invoices from now on."
            )
        if self._probing == window.first:
            self._probing = None

    # What the pipeline asks.

    def margin(self) -> int:
        """Invoices kept below each multiple of M: the counts' largest error so far and half as
        much again, and never less than a small share of M."""
        least = int((self.size.usable() or 0) * settings.COUNT_MARGIN_SHARE)
        worst = max((abs(error) for error in self._errors), default=0)
        return max(least, math.ceil(worst * 1.5))

    def expected_invoices(self, window: Window) -> int | None:
        """The invoices the window's days were counted to hold, or None if not all are."""
        if self.counts is None:
            return None
        counts = self.counts.known(window.first, window.last)
        return sum(counts) if len(counts) == window.days else None

    def expected_documents(self, invoices: int | None) -> int | None:
        """The documents an export of that many counted invoices will have, when M is known."""
        if invoices is None or not self.size.exact:
            return None
        return documents_for(invoices, self.size.exact)

    def plan(self, first: date, stop: date, urgent: bool) -> Planned | None:
        """The next window from `first` (to `stop` at the latest), or None to wait for counts
        or for M; `urgent` when documents would wait for it: then it plans with what it knows."""
        last = stop if self.max_days is None else min(stop, first + timedelta(self.max_days - 1))
        span = (last - first).days + 1
        counts = self.counts.known(first, last) if self.counts else []
        listing_over = self.counts is None or self.counts.finished
        size = self.size
        if span == 1:  # one day left, or windows of one day: nothing to choose
            return self._take(first, 1, counts, probe=False)
        if not size.exact and not self._planned and not size.at_least:
            return self._take(first, min(span, self._first_days), counts, probe=False)
        if not size.exact and self._probing is not None and not urgent:
            return None  # the probe in flight says M soon
        per_document = size.exact or (size.at_least if urgent or self._probing else None)
        if per_document is None:  # a probe: many invoices, to split and say M
            target = max(settings.PROBE_INVOICES, settings.PROBE_GROWTH * size.at_least)
            reach = _days_within(counts, target)
            if reach < len(counts) or len(counts) == span or listing_over or urgent:
                days = reach or min(span, self._estimated_days(target))
                return self._take(first, days, counts, probe=True)
            return None
        if not counts:
            if not (urgent or listing_over):
                return None
            target = per_document * settings.MAX_DOCUMENTS_PER_EXPORT
            return self._take(first, min(span, self._estimated_days(target)), counts, False)
        # The plan of the days counted, up to several windows ahead: its first window is all
        # that is taken; the rest is planned again as more days are counted.
        horizon = max(1, _days_within(counts, per_document * settings.PLAN_HORIZON_DOCUMENTS))
        to_the_end = len(counts) == span and horizon == len(counts)
        counts = counts[:horizon]
        days = self._fitted_days(first, counts, per_document, open_end=not to_the_end)
        enough = to_the_end or days < len(counts)
        if not enough and not (urgent or listing_over):
            return None  # the plan runs to the end of the counts: wait for more of them
        return self._take(first, days, counts, probe=False)

    def _fitted_days(
        self, first: date, counts: list[int], per_document: int, open_end: bool
    ) -> int:
        """The first window of fitted_plan, computed once for the same days, counts and limits."""
        margin = self.margin()
        key = (first, tuple(counts), per_document, margin, self.max_days, open_end)
        if self._fitted is None or self._fitted[0] != key:
            limit = settings.MAX_DOCUMENTS_PER_EXPORT
            plan = fitted_plan(counts, per_document, margin, limit, self.max_days, open_end)
            self._fitted = (key, plan[0])
        return self._fitted[1]

    def _take(self, first: date, days: int, counts: list[int], probe: bool) -> Planned:
        days = max(1, days)
        window = Window(first, first + timedelta(days - 1))
        self._planned += 1
        self._last_days = days
        if probe:
            self._probing = first
        invoices = sum(counts[:days]) if len(counts) >= days else None
        return Planned(window, invoices, probe)

    def _estimated_days(self, invoices: int) -> int:
        """Days that hold about `invoices` at the density read so far, when days are not
        counted (getInvoices failed or lags): twice the last window when nothing is known."""
        if self._read_invoices and self._read_days:
            density = self._read_invoices / self._read_days
            return max(1, int(invoices / density))
        return self._last_days * 2

    def forecast(self, first: date, last: date) -> Forecast | None:
        """What exporting first..last takes, once all its days are counted."""
        if self.counts is None:
            return None
        counts = self.counts.known(first, last)
        if len(counts) != (last - first).days + 1:
            return None
        invoices = sum(counts)
        exact = self.size.exact
        if not exact:
            return Forecast(invoices, None, None, self.size.at_least)
        limit = settings.MAX_DOCUMENTS_PER_EXPORT
        _, planned = fitted_plan(counts, exact, self.margin(), limit, self.max_days)
        return Forecast(invoices, int(planned), documents_for(invoices, exact), exact)


@dataclass(frozen=True)
class Forecast:
    """The invoices of the days left and the documents their plan takes (None: M unknown)."""

    invoices: int
    documents: int | None
    fewest: int | None  # ceil(invoices / M): no plan takes fewer
    per_document: int  # M, or the fullest document seen while M is not known


def _days_within(counts: list[int], invoices: int) -> int:
    """How many of the counted days, from the first, hold at most `invoices` in all."""
    total = 0
    for days, count in enumerate(counts):
        total += count
        if total > invoices:
            return days
    return len(counts)
