"""invoice_exports: the export status stream (getInvoicesExports), every page."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from airbyte_cdk.models import SyncMode

from source_sp_invoices import settings
from source_sp_invoices.dates import format_datetime, parse_datetime
from source_sp_invoices.state import read_state_datetime
from source_sp_invoices.streams.base import PagedSpApiStream


class InvoiceExports(PagedSpApiStream):
    """The API's Export objects as they are; the cursor is when generating the export started.

    Each incremental sync asks again for exports created up to `lookback_days` before the
    cursor, so that an export seen REQUESTED or PROCESSING is seen again once DONE or ERROR.
    """

    name = "invoice_exports"
    primary_key = "exportId"
    cursor_field = "generateExportStartedAt"
    state_keys = ("generateExportStartedAt",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._latest: datetime | None = None

    def check_state(self, state: Mapping[str, Any]) -> None:
        if self.cursor_field in state:
            read_state_datetime(self.name, state, self.cursor_field)

    def path(self, **kwargs: Any) -> str:
        return "exports"

    def stream_slices(
        self, sync_mode: SyncMode, stream_state: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any] | None]:
        begin = self.config.start
        if sync_mode == SyncMode.incremental and self.cursor_field in self._state:
            cursor = read_state_datetime(self.name, self._state, self.cursor_field)
            begin = max(begin, cursor - self.config.lookback)
        end = datetime.now(UTC)
        if begin >= end:
            return  # a saved cursor in the future: nothing to list, and Amazon refuses the range
        yield {"dateStart": format_datetime(begin), "dateEnd": format_datetime(end)}

    def first_page_params(self, stream_slice: Mapping[str, Any]) -> MutableMapping[str, Any]:
        return {
            "dateStart": stream_slice["dateStart"],
            "dateEnd": stream_slice["dateEnd"],
            "pageSize": settings.EXPORTS_PAGE_SIZE,
        }

    def records_of(self, body: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
        for export in body.get("exports") or []:
            started = export.get(self.cursor_field)
            if started:
                moment = parse_datetime(started)
                self._latest = max(self._latest, moment) if self._latest else moment
            yield export

    def read_records(self, *args: Any, **kwargs: Any) -> Iterable[Mapping[str, Any]]:
        yield from super().read_records(*args, **kwargs)
        if self._latest is not None:
            saved = self._state.get(self.cursor_field)
            if not saved or parse_datetime(saved) < self._latest:
                self._state = {self.cursor_field: format_datetime(self._latest)}
