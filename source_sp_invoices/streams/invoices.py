"""invoices: getInvoices, read window by window, every page, with state saved after each window."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import Any

from airbyte_cdk.models import SyncMode

from source_sp_invoices import settings
from source_sp_invoices.dates import date_windows, format_datetime, parse_datetime
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts, day_start
from source_sp_invoices.state import read_state_datetime
from source_sp_invoices.streams.base import PagedSpApiStream


class Invoices(PagedSpApiStream):
    """Invoice metadata; the cursor is the invoice's issue date.

    State: {"date": D} means every window ending at or before D was read completely. While a sync
    runs, "resume_from" holds the end of its last finished window, so that a sync that was killed
    continues there instead of starting again from D minus the lookback.

    When the document streams are read too, `counts` takes the invoices of each day from these
    very pages, to plan their export windows (export_pipeline/invoice_counts.py): one listing
    serves both.
    """

    name = "invoices"
    primary_key = "id"
    cursor_field = "date"
    state_keys = ("date", "resume_from")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plan_end: datetime | None = None
        self.counts: InvoiceCounts | None = None

    def check_state(self, state: Mapping[str, Any]) -> None:
        for key in ("date", "resume_from"):
            if key in state:
                read_state_datetime(self.name, state, key)

    def path(self, **kwargs: Any) -> str:
        return "invoices"

    def stream_slices(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any] | None]:
        begin, end = self.planned_range(sync_mode)
        windows = list(date_windows(begin, end, self.config.invoices_window))
        self._plan_end = end
        if self.counts is not None:
            self.counts.plan_listing(begin, end)
        self.logger.info(
            f"{self.name}: {len(windows)} window(s) from {format_datetime(begin)} "
            f"to {format_datetime(end)}"
        )
        for number, (start, stop) in enumerate(windows, 1):
            yield {
                "dateStart": format_datetime(start),
                "dateEnd": format_datetime(stop),
                "window": f"{number}/{len(windows)}",
            }

    def planned_range(self, sync_mode: SyncMode) -> tuple[datetime, datetime]:
        """What a sync in this mode lists: from where a killed sync stopped, else from the
        cursor less the lookback, else from the start date; to the end date or now."""
        begin = self.config.start
        if sync_mode == SyncMode.incremental and "resume_from" in self._state:
            begin = max(begin, self._state_datetime("resume_from"))
        elif sync_mode == SyncMode.incremental and "date" in self._state:
            begin = max(begin, self._state_datetime("date") - self.config.lookback)
        return begin, self.config.end_or_now()

    def first_page_params(self, stream_slice: Mapping[str, Any]) -> MutableMapping[str, Any]:
        return {
            "dateStart": stream_slice["dateStart"],
            "dateEnd": stream_slice["dateEnd"],
            "pageSize": settings.INVOICES_PAGE_SIZE,
            "sortBy": "START_DATE_TIME",
            "sortOrder": "ASC",
            **self.config.filters.query_params(),
        }

    def records_of(self, body: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        # Every record Amazon returns is emitted, even one whose `date` falls outside the window
        # asked for: the model says getInvoices filters on the "invoice creation date", which
        # need not be the record's `date`, so a record dropped here could be in no window at
        # all. An invoice seen in two windows is harmless: the primary key is `id`.
        return body.get("invoices") or []

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any]]:
        assert stream_slice is not None
        count = 0
        try:
            for record in self.window_records(stream_slice):
                count += 1
                yield record
        except Exception as error:
            if self.counts is not None:  # the rest is listed for the document streams elsewhere
                self.counts.stream_stopped(str(error))
            raise
        self.logger.info(
            f"{self.name}: window {stream_slice['window']} {stream_slice['dateStart']} .. "
            f"{stream_slice['dateEnd']} done, {count} invoice(s)"
        )
        self._window_done(parse_datetime(stream_slice["dateEnd"]))

    def window_records(self, stream_slice: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
        """Every invoice of one window, every page; counted by day when `counts` is set."""
        counts = self.counts
        records = super().read_records(SyncMode.full_refresh, stream_slice=stream_slice)
        if counts is None:
            yield from records
            return
        start = parse_datetime(stream_slice["dateStart"])
        end = parse_datetime(stream_slice["dateEnd"])
        reached = start.date()
        for record in records:
            issued = _issued(record)
            # Bounds are inclusive: an invoice at the end instant is the next window's too.
            if issued is not None and issued != end:
                counts.add(issued)
                # Pages come in ascending order: the days before this invoice's are listed, so
                # a long window of getInvoices gives the plan its days one by one.
                if issued.date() > reached:
                    reached = issued.date()
                    counts.listed(start, max(start, day_start(reached)))
            yield record
        counts.listed(start, end)

    def _window_done(self, stop: datetime) -> None:
        """Move the cursor past a finished window, never backwards."""
        state: MutableMapping[str, Any] = {"date": format_datetime(stop)}
        if "date" in self._state and self._state_datetime("date") > stop:
            state["date"] = self._state["date"]
        if self._plan_end is not None and stop < self._plan_end:
            state["resume_from"] = format_datetime(stop)
        self._state = state

    def _state_datetime(self, key: str) -> datetime:
        return read_state_datetime(self.name, self._state, key)


def _issued(record: Mapping[str, Any]) -> datetime | None:
    """An invoice's `date`, or None if it has none that reads (still emitted: counts guide)."""
    try:
        return parse_datetime(record["date"])
    except (KeyError, TypeError, ValueError):
        return None
