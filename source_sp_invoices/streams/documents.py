"""invoice_documents and invoice_items: the invoices of the export documents, window by window."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
from airbyte_cdk.models import (
    AirbyteEstimateTraceMessage,
    AirbyteMessage,
    AirbyteRecordMessage,
    AirbyteTraceMessage,
    EstimateType,
    FailureType,
    SyncMode,
    TraceType,
)
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources.streams.call_rate import APIBudget
from airbyte_cdk.sources.streams.http.error_handlers import HttpStatusErrorHandler
from airbyte_cdk.sources.streams.http.error_handlers.default_error_mapping import (
    DEFAULT_ERROR_MAPPING,
)
from airbyte_cdk.sources.streams.http.error_handlers.response_models import (
    ErrorResolution,
    ResponseAction,
)
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.config import ConfigError
from source_sp_invoices.document_cache import DocumentCache
from source_sp_invoices.downloads import BackgroundDownload, DocumentSource
from source_sp_invoices.errors import json_body
from source_sp_invoices.exports import CHECKPOINT, Entry, ExportPipeline, Window
from source_sp_invoices.nfe import NfeError, NfeParser, ParsedNfe
from source_sp_invoices.progress import Progress, duration, windows_needed
from source_sp_invoices.streams.base import IncrementalSpApiStream
from source_sp_invoices.streams.state import read_state_date, state_message

# The pre-signed S3 URL answers 403 (or 400) once it has expired, 404 if it is wrong: the
# caller asks Amazon for a fresh URL instead of retrying the same one.
_REFRESH_URL = ErrorResolution(
    response_action=ResponseAction.IGNORE, failure_type=None, error_message=None
)
DOWNLOAD_ERRORS = {**DEFAULT_ERROR_MAPPING, 400: _REFRESH_URL, 403: _REFRESH_URL, 404: _REFRESH_URL}


class DocumentDownloadFailed(AirbyteTracedException):
    def __init__(self, document_id: str, reason: str) -> None:
        message = (
            f"Document {document_id} could not be downloaded with {settings.DOWNLOAD_ATTEMPTS} "
            f"fresh URLs: {reason}"
        )
        super().__init__(
            message=message, internal_message=message, failure_type=FailureType.transient_error
        )


class ExportedInvoicesStream(IncrementalSpApiStream, ABC):
    """Exports are created per window of whole UTC days and read to the last invoice.

    State: {"dateEnd": D} means every day up to D (included) was read completely; while a sync
    runs, "resume_from" is its first unfinished day and "exports" the export ids created for
    unfinished windows, with the documents already read, so that a killed sync polls those
    exports again instead of creating new ones.
    """

    cursor_field = "dateEnd"
    state_keys = ("dateEnd", "resume_from", "exports", "windowDays")

    def __init__(self, *args: Any, cache: DocumentCache | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cache = cache or DocumentCache()
        self._parser = NfeParser() if self.config.parse_nfe else None
        self._pipeline: ExportPipeline | None = None
        self._progress = Progress(self.config.start.date(), self.config.start.date())
        self._downloads = HttpClient(
            name=f"{self.name}_download",
            logger=self.logger,
            error_handler=HttpStatusErrorHandler(
                self.logger, DOWNLOAD_ERRORS, max_retries=self._max_retries
            ),
            api_budget=APIBudget(policies=[]),
            authenticator=None,  # the S3 URL is pre-signed: no SP-API or LWA header leaves
        )

    def check_state(self, state: Mapping[str, Any]) -> None:
        for key in ("dateEnd", "resume_from"):
            if key in state:
                read_state_date(self.name, state, key)
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

    def path(self, **kwargs: Any) -> str:
        return "exports"

    def next_page_token(self, response: requests.Response) -> Mapping[str, Any] | None:
        return None

    def parse_response(self, response: requests.Response, **kwargs: Any) -> Iterable[Mapping]:
        yield from ()  # records come from the export pipeline, not from one response

    def stream_slices(
        self, sync_mode: SyncMode, stream_state: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Iterable[Mapping[str, Any] | None]:
        first = self.config.start.date()
        incremental = sync_mode == SyncMode.incremental
        if incremental and "resume_from" in self._state:
            first = max(first, read_state_date(self.name, self._state, "resume_from"))
        elif incremental and "dateEnd" in self._state:
            done = read_state_date(self.name, self._state, "dateEnd")
            first = max(first, done + timedelta(days=1) - self.config.lookback)
        # Only whole days are exported: the day of the end is read by the next sync.
        last = self.config.end_or_now().date() - timedelta(days=1)
        learnt = self._state.get("windowDays") if incremental else None
        self._pipeline = ExportPipeline(
            self._cache.wrap(_SpApiExports(self)),
            first,
            last,
            self._state.get("exports", {}) if incremental else {},
            self.logger,
            window_days=learnt if isinstance(learnt, int) else 1,
            max_days=self.config.documents_window_days,
            document_slot_wait=lambda: self._budget.wait_time("getInvoicesDocument"),
            poll_unit=lambda: 1 / self._rate_limits.rate("getInvoicesExport"),
            known_window=self._cache.window_starting,
        )
        self._progress = Progress(first, last, time.monotonic())
        self.logger.info(self._plan_message(first, last))
        for number, window in enumerate(self._pipeline.windows(), 1):
            yield {"window": window.key, "number": number}
        self.logger.info(self._progress.summary(self.name))

    def _plan_message(self, first: date, last: date) -> str:
        """Say up front how long the documents of this sync take at Amazon's document rate."""
        assert self._pipeline is not None
        days = self._progress.days
        if days <= 0:
            return f"{self.name}: nothing to export (the last whole day, {last}, is done)."
        fewest = windows_needed(days, self._pipeline.window_days, self.config.documents_window_days)
        per_document = 1 / self._rate_limits.rate("getInvoicesDocument")
        return (
            f"{self.name}: days {first} to {last} ({days} day(s)) in windows of "
            f"{self._pipeline.window_days} to {self.config.documents_window_days} day(s): at "
            f"least {fewest} document(s), up to {days} or more if busy days split their exports. "
            f"Amazon allows one document every {per_document:.0f} s, so this takes at least "
            f"{duration(fewest * per_document)} (up to {duration(days * per_document)})."
        )

    def read_records(
        self,
        sync_mode: SyncMode,
        cursor_field: list[str] | None = None,
        stream_slice: Mapping[str, Any] | None = None,
        stream_state: Mapping[str, Any] | None = None,
    ) -> Iterable[Mapping[str, Any] | AirbyteMessage]:
        assert stream_slice is not None and self._pipeline is not None
        window = Window.from_key(stream_slice["window"])
        self.logger.info(f"{self.name}: window {stream_slice['number']}: {window}")
        count = records = 0
        for event in self._pipeline.read_window(window):
            if event is CHECKPOINT:
                self._state = self._current_state(window, finished=False)
                yield state_message(self.name, self._state)
            else:
                assert isinstance(event, Entry)
                count += 1
                # Messages built here skip the CDK's per-record conversion (a copy of the
                # record and type checks): tens of thousands of records per document.
                emitted_at = time.time_ns() // 1_000_000
                for record in self._records(event):
                    records += 1
                    yield AirbyteMessage(
                        type=MessageType.RECORD,
                        record=AirbyteRecordMessage(
                            stream=self.name, data=record, emitted_at=emitted_at
                        ),
                    )
        self._state = self._current_state(window, finished=True)
        progress = self._progress
        progress.window_done(window, count, records)
        self.logger.info(
            f"{self.name}: window {window} done, {count} invoice(s), {records} record(s); "
            f"{progress.days_done} of {progress.days} day(s) read"
        )
        estimate = progress.row_estimate()
        if estimate is not None:
            yield AirbyteMessage(
                type=MessageType.TRACE,
                trace=AirbyteTraceMessage(
                    type=TraceType.ESTIMATE,
                    emitted_at=time.time() * 1000,
                    estimate=AirbyteEstimateTraceMessage(
                        name=self.name, type=EstimateType.STREAM, row_estimate=estimate
                    ),
                ),
            )

    def _current_state(self, window: Window, finished: bool) -> MutableMapping[str, Any]:
        """The cursor only passes a window once all of its documents were read."""
        assert self._pipeline is not None
        state: MutableMapping[str, Any] = {}
        done = window.last if finished else window.first - timedelta(days=1)
        previous = self._state.get("dateEnd")
        if previous and read_state_date(self.name, self._state, "dateEnd") > done:
            state["dateEnd"] = previous
        elif done >= self.config.start.date():
            state["dateEnd"] = done.isoformat()
        if not finished or window.last < self._pipeline.last_day:
            resume = window.last + timedelta(days=1) if finished else window.first
            state["resume_from"] = resume.isoformat()
        pending = self._pipeline.pending()
        if pending:
            state["exports"] = pending
        state["windowDays"] = self._pipeline.window_days
        return state

    @abstractmethod
    def _records(self, entry: Entry) -> Iterable[dict[str, Any]]:
        """The records of one invoice XML."""

    def _parse(self, entry: Entry) -> ParsedNfe | str:
        """The NF-e's columns, or why the XML is not a readable NF-e (logged, naming the file).

        By default the raw XML still lands in invoice_documents with `nfeParseError` saying
        why its columns are empty: an unreadable file neither stops the sync nor loses the
        invoice. With `invalid_xml: fail_sync` the sync stops here instead.
        """
        assert self._parser is not None
        try:
            return self._parser.parse(entry.xml.data)  # as stored: no second encoding
        except NfeError as error:
            where = (
                f"{entry.xml.file_name} of export {entry.export_id} "
                f"(document {entry.document_id}, window {entry.window})"
            )
            if self.config.fail_on_invalid_xml:
                raise AirbyteTracedException(
                    message=f"{where} is not a readable NF-e: {error}. The sync stops because "
                    "`invalid_xml` is fail_sync; set it to emit_with_error to land such "
                    "invoices with their raw XML and the reason in nfeParseError.",
                    failure_type=FailureType.system_error,
                ) from None
            self.logger.warning(f"{self.name}: {where} is not a readable NF-e: {error}")
            return str(error)


class InvoiceDocuments(ExportedInvoicesStream):
    """One record per invoice XML: the raw text and, unless turned off, the NF-e header."""

    name = "invoice_documents"
    primary_key = "invoiceId"

    def _records(self, entry: Entry) -> Iterable[dict[str, Any]]:
        record = _window_fields(entry)
        record["fileName"] = entry.xml.file_name
        record["xml"] = entry.xml.xml
        if self._parser is not None:
            parsed = self._parse(entry)
            if isinstance(parsed, str):
                record["nfeParseError"] = parsed
            else:
                record.update(parsed.header)
        return (record,)


class InvoiceItems(ExportedInvoicesStream):
    """One record per NF-e item (det) of every invoice of the export documents."""

    name = "invoice_items"
    primary_key = ["invoiceId", "itemNumber"]

    def _records(self, entry: Entry) -> Iterable[dict[str, Any]]:
        if self._parser is None:
            return ()
        parsed = self._parse(entry)
        if isinstance(parsed, str):
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


class _SpApiExports:
    """The pipeline's calls over the stream's CDK HTTP client: retries, errors and budget."""

    def __init__(self, stream: InvoiceDocuments) -> None:
        self._stream = stream
        self._client: HttpClient = stream._http_client
        self._base = stream.url_base

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        _, response = self._client.send_request(
            http_method=method,
            url=self._base + path,
            request_kwargs={"timeout": settings.REQUEST_TIMEOUT},
            **kwargs,
        )
        return response

    def create_export(self, window: Window) -> str:
        config = self._stream.config
        body = {
            "marketplaceId": config.marketplace_id,
            "dateStart": window.first.isoformat(),
            "dateEnd": window.last.isoformat(),
            "fileFormat": "XML",
            **config.filters.export_body(),
        }
        export_id = json_body(self._send("POST", "exports", json=body)).get("exportId")
        if not export_id:
            raise AirbyteTracedException(
                message=f"createInvoicesExport for {window} answered without an exportId."
            )
        return str(export_id)

    def get_export(self, export_id: str) -> Mapping[str, Any] | None:
        response = self._send("GET", f"exports/{export_id}")
        if response.status_code == 404:
            return None
        return json_body(response).get("export") or {}

    def download_document(self, document_id: str, keep: Path | None = None) -> DocumentSource:
        reason = ""
        for attempt in range(1, settings.DOWNLOAD_ATTEMPTS + 1):
            document = json_body(self._send("GET", f"documents/{document_id}"))
            url = (document.get("invoicesDocument") or {}).get("invoicesDocumentUrl")
            if not url:
                raise AirbyteTracedException(
                    message=f"getInvoicesDocument for {document_id} answered without a URL."
                )
            try:
                _, response = self._stream._downloads.send_request(
                    http_method="GET",
                    url=url,
                    request_kwargs={"stream": True, "timeout": settings.REQUEST_TIMEOUT},
                )
                if response.ok:
                    # The body arrives in the background; a break in it is the reader's to see.
                    return BackgroundDownload(_body(response), keep)
                reason = f"the download URL answered HTTP {response.status_code}"
                response.close()
            except requests.RequestException as error:  # no answer to the download request
                reason = f"the download failed ({type(error).__name__})"
            self._stream.logger.warning(
                f"Document {document_id}: {reason}; asking for a fresh URL (attempt {attempt})."
            )
        raise DocumentDownloadFailed(document_id, reason)


def _body(response: requests.Response) -> Iterator[bytes]:
    """The response's body in chunks; the connection is released however the reading ends."""
    try:
        yield from response.iter_content(settings.DOWNLOAD_CHUNK_BYTES)
    finally:
        response.close()
