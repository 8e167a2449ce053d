"""The getInvoices listing that counts the invoices of each day for the export plan.

When the `invoices` stream is selected it lists its own range, and its pages are counted as
they pass (streams/invoices.py): this listing asks only for the days the document streams need
and that stream will not list (all of them when it is not selected), and emits nothing. It runs
in a thread of its own, so that a getInvoices page every ten seconds never holds up a poll or a
document, and shares the call budget of the `invoices` stream (source.py), so that together they
keep getInvoices' usage plan. If that stream stops early, the days it did not list are listed
here. A failure only costs the plan its counts: windows are then planned from the density of
the windows read (planner.py).
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta

from source_sp_invoices.dates import date_windows, format_datetime
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.streams.invoices import Invoices

_RECHECK_SECONDS = 5.0  # how often to look whether the `invoices` stream stopped early


class CountListing:
    """Lists first..last (UTC days) into `counts`, but for what the `invoices` stream lists."""

    def __init__(
        self,
        stream: Invoices,
        counts: InvoiceCounts,
        first: date,
        last: date,
        logger: logging.Logger,
    ) -> None:
        self._stream = stream
        self._counts = counts
        self._range = (day_start(first), day_start(last + timedelta(days=1)))
        self._logger = logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="count-listing", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop at the next record (the document pass ended)."""
        self._stop.set()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                gap = self._next_gap()
                if gap is None:
                    if not self._counts.unlisted(*self._range):
                        return  # every day is counted
                    self._counts.wait(_RECHECK_SECONDS)  # the `invoices` stream lists the rest
                    continue
                self._list(*gap)
        except Exception as error:  # the plan loses its counts, not the sync its data
            self._logger.warning(
                f"Counting the invoices of each day with getInvoices failed ({error}): the "
                "remaining export windows are planned from the invoices read so far."
            )
        finally:
            self._counts.finish()

    def _next_gap(self) -> tuple[datetime, datetime] | None:
        """The first part of the range nobody has listed or will list."""
        planned = self._counts.planned()
        for start, end in self._counts.unlisted(*self._range):
            if planned is not None:
                low, high = planned
                if start < low:
                    end = min(end, low)  # what lies before it
                elif end > high:
                    start = max(start, high)  # what lies after it
                else:
                    continue  # the `invoices` stream lists it
            return start, end
        return None

    def _list(self, start: datetime, end: datetime) -> None:
        windows = list(date_windows(start, end, self._stream.config.invoices_window))
        self._logger.info(
            f"Counting the invoices of {format_datetime(start)} to {format_datetime(end)} with "
            f"getInvoices ({len(windows)} window(s)), to plan the export windows."
        )
        for low, high in windows:
            window = {"dateStart": format_datetime(low), "dateEnd": format_datetime(high)}
            for _ in self._stream.window_records(window):
                if self._stop.is_set():
                    return
