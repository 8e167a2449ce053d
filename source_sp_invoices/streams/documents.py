"""invoice_documents and invoice_items: the invoices of the export documents, window by window."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import requests
from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteRecordMessageFileReference,
    AirbyteStream,
    SyncMode,
)

from source_sp_invoices.config import ConfigError
from source_sp_invoices.export_pipeline.api import SpApiExports
from source_sp_invoices.export_pipeline.changed_days import read_records
from source_sp_invoices.export_pipeline.file_staging import FileStager
from source_sp_invoices.export_pipeline.pipeline import Entry
from source_sp_invoices.export_pipeline.windows import Window
from source_sp_invoices.nfe import ParsedNfe
from source_sp_invoices.state import read_state_date
from source_sp_invoices.streams.base import IncrementalSpApiStream


class ExportedInvoicesStream(IncrementalSpApiStream, ABC):
    """Exports are created per window of whole UTC days and read to the last invoice.

    State: {"dateEnd": D} means every day up to D (included) was read completely; while a sync
    runs, "resume_from" is its first unfinished day and "exports" the export ids created for
    unfinished windows, with the documents already read, so that a killed sync polls those
    exports again instead of creating new ones. "invoicesPerDocument" is M, the most invoices
    one export document holds, once an export split ("fullestDocument" the most seen until
    then), and "longestRangeDays" the longest date range Amazon accepted after refusing one:
    what windows are planned with (export_pipeline/planner.py). "delivered" holds, for each slot
    of the last `lookback_days` days, what getInvoices listed of it before its exports were made,
    and "pending" the same for slots whose exports are not all read yet: what the next sync
    compares, to export again only the days that changed (export_pipeline/changed_days.py);
    "exportDayZone" the zone Amazon's exports were seen to read their days in.
    Both document streams are read
    by one `DocumentPass` (export_pipeline/document_pass.py), which sets this state after every
    document.
    """

    cursor_field = "dateEnd"
    state_keys = (
        "dateEnd",
        "resume_from",
        "exports",
        "longestRangeDays",
        "invoicesPerDocument",
        "fullestDocument",
        "windowDays",  # written by 0.4.0 and earlier, still read (see DocumentPass)
        "delivered",
        "pending",
        "exportDayZone",
    )
    needs_nfe = True  # whether the records come from the parsed NF-e

    def check_state(self, state: Mapping[str, Any]) -> None:
        for key in ("dateEnd", "resume_from"):
            if key in state:
                read_state_date(self.name, state, key)
        for key, unit in (
            ("windowDays", "days"),
            ("longestRangeDays", "days"),
            ("invoicesPerDocument", "invoices"),
            ("fullestDocument", "invoices"),
        ):
            value = state.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"The saved state of stream `{self.name}` has {key}={value!r}, which is not "
                    f"a whole number of {unit} (1 or more). Fix the state or reset the stream."
                )
        read_records(self.name, state)
        exports = state.get("exports", {})
        try:
            for key, export in exports.items():
                Window.from_key(key)
                if not isinstance(export, dict) or not isinstance(export.get("exportId"), str):
                    raise ValueError(key)
        except (AttributeError, ValueError):
            raise ConfigError(
                f"The saved state of stream `{self.name}` has exports={exports!r}, which is not "
                'a map of "YYYY-MM-DD/YYYY-MM-DD" windows to {"exportId": ...}. Fix the state '
                "or reset the stream."
            ) from None

    def first_day(self, sync_mode: SyncMode) -> date:
        """The first day this stream needs in this sync: where a killed sync stopped, else the
        day after the cursor less the lookback, else the start date."""
        first = self.config.start.date()
        incremental = sync_mode == SyncMode.incremental
        if incremental and "resume_from" in self._state:
            first = max(first, read_state_date(self.name, self._state, "resume_from"))
        elif incremental and "dateEnd" in self._state:
            done = read_state_date(self.name, self._state, "dateEnd")
            first = max(first, done + timedelta(days=1) - self.config.lookback)
        return first

    def saved_exports(self, sync_mode: SyncMode) -> Mapping[str, Mapping[str, Any]]:
        """The exports a killed sync left in flight (only an incremental sync resumes them)."""
        return self._state.get("exports", {}) if sync_mode == SyncMode.incremental else {}

    def exports_api(self) -> SpApiExports:
        """The pipeline's calls over this stream's HTTP client, budget and rate limits."""
        return SpApiExports(
            self.config, self.http_client, self.url_base, self.budget, self.rate_limits, self.logger
        )

    def path(self, **kwargs: Any) -> str:
        return "exports"

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        return None

    def parse_response(self, response: requests.Response, **kwargs: Any) -> Iterable[Mapping]:
        yield from ()  # records come from the export pipeline, not from one response

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any] | AirbyteMessage]:
        """Not read on its own: both document streams are read by one DocumentPass
        (read_together.py), which shares each document between them."""
        raise NotImplementedError(f"{self.name} is read by DocumentPass, not stream by stream")

    @abstractmethod
    def records(self, entry: Entry, parsed: ParsedNfe | str | None) -> Iterable[dict[str, Any]]:
        """The records of one invoice XML; `parsed` is its NF-e, why it is not one, or None
        when parse_nfe is off."""

    def file_of(
        self, entry: Entry, parsed: ParsedNfe | str | None
    ) -> AirbyteRecordMessageFileReference | None:
        """The file the records of one invoice XML carry (staged before they are emitted), or
        None: only invoice_documents delivers files, when they are asked for."""
        return None


class InvoiceDocuments(ExportedInvoicesStream):
    """One record per invoice XML: the raw text and, unless turned off, the NF-e header."""

    name = "invoice_documents"
    primary_key = "invoiceId"
    # Set by the source when this sync delivers the invoice files (file transfer).
    files: FileStager | None = None

    @property
    def needs_nfe(self) -> bool:  # type: ignore[override]
        return self.config.parse_nfe

    def as_airbyte_stream(self) -> AirbyteStream:
        """A stream of files and their metadata: the CDK leaves is_file_based unset."""
        stream = super().as_airbyte_stream()
        stream.is_file_based = True
        return stream

    def file_of(
        self, entry: Entry, parsed: ParsedNfe | str | None
    ) -> AirbyteRecordMessageFileReference | None:
        if self.files is None:
            return None
        header = parsed.header if isinstance(parsed, ParsedNfe) else None
        return self.files.stage(entry.xml.invoice_id, entry.xml.data, header)

    def records(self, entry: Entry, parsed: ParsedNfe | str | None) -> Iterable[dict[str, Any]]:
        record = _window_fields(entry)
        record["fileName"] = entry.xml.file_name
        if self.files is None or self.config.keep_xml_column:  # else the file is the XML
            record["xml"] = entry.xml.xml
        if isinstance(parsed, str):
            record["nfeParseError"] = parsed
        elif parsed is not None:
            record.update(parsed.header)
        return (record,)


class InvoiceItems(ExportedInvoicesStream):
    """One record per NF-e item (det) of every invoice of the export documents."""

    name = "invoice_items"
    primary_key = ["invoiceId", "itemNumber"]

    def records(self, entry: Entry, parsed: ParsedNfe | str | None) -> Iterable[dict[str, Any]]:
        if parsed is None or isinstance(parsed, str):
            return ()
        common = _window_fields(entry)
        return [{**common, **item} for item in parsed.items]


def _window_fields(entry: Entry) -> dict[str, Any]:
    first, last = _iso_days(entry.window)
    return {
        "invoiceId": entry.xml.invoice_id,
        "exportId": entry.export_id,
        "invoicesDocumentId": entry.document_id,
        "dateStart": first,
        "dateEnd": last,
    }


@lru_cache(maxsize=64)
def _iso_days(window: Window) -> tuple[str, str]:
    """A window's days as text, built once per window rather than once per invoice."""
    return window.first.isoformat(), window.last.isoformat()
