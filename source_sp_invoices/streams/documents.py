"""invoice_documents and invoice_items: the invoices of the export documents, window by window."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import requests
from airbyte_cdk.models import AirbyteMessage, FailureType, SyncMode
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.config import ConfigError
from source_sp_invoices.downloads import BackgroundDownload, DocumentSource
from source_sp_invoices.errors import amazon_error, json_body
from source_sp_invoices.exports import DateRangeRefused, Entry, ExportsApi, Window
from source_sp_invoices.nfe import ParsedNfe
from source_sp_invoices.streams.base import IncrementalSpApiStream
from source_sp_invoices.streams.state import read_state_date


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
    exports again instead of creating new ones. Both document streams are read by one
    `DocumentPass` (document_pass.py), which sets this state after every document.
    """

    cursor_field = "dateEnd"
    state_keys = ("dateEnd", "resume_from", "exports", "windowDays")
    needs_nfe = True  # whether the records come from the parsed NF-e

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Not the CDK's HTTP client: it logs a request's URL when it ignores or retries an
        # answer, and the response's body on retries, and a pre-signed URL is a credential (its
        # query string grants access to the document; an S3 error body can quote it). Downloads
        # go through a session of their own with no SP-API or LWA header; a failed download is
        # tried again with a fresh URL (see _SpApiExports.download_document), never logged.
        self._downloads = requests.Session()

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

    def exports_api(self) -> ExportsApi:
        """The pipeline's calls over this stream's HTTP clients."""
        return _SpApiExports(self)

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

    def document_slot_wait(self) -> float:
        """Seconds until getInvoicesDocument may be called again (one call a minute)."""
        return self._budget.wait_time("getInvoicesDocument")

    def seconds_between_polls(self) -> float:
        """Seconds between two calls of getInvoicesExport at the rate Amazon applies."""
        return 1 / self._rate_limits.rate("getInvoicesExport")

    def seconds_per_document(self) -> float:
        """Seconds per document at the rate Amazon applies to getInvoicesDocument."""
        return 1 / self._rate_limits.rate("getInvoicesDocument")

    @abstractmethod
    def records(self, entry: Entry, parsed: ParsedNfe | str | None) -> Iterable[dict[str, Any]]:
        """The records of one invoice XML; `parsed` is its NF-e, why it is not one, or None
        when parse_nfe is off."""


class InvoiceDocuments(ExportedInvoicesStream):
    """One record per invoice XML: the raw text and, unless turned off, the NF-e header."""

    name = "invoice_documents"
    primary_key = "invoiceId"

    @property
    def needs_nfe(self) -> bool:  # type: ignore[override]
        return self.config.parse_nfe

    def records(self, entry: Entry, parsed: ParsedNfe | str | None) -> Iterable[dict[str, Any]]:
        record = _window_fields(entry)
        record["fileName"] = entry.xml.file_name
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


class _SpApiExports:
    """The pipeline's calls over the stream's CDK HTTP client: retries, errors and budget."""

    def __init__(self, stream: ExportedInvoicesStream) -> None:
        self._stream = stream
        self._client: HttpClient = stream._http_client
        self._date_times = False  # dates (format: date) until Amazon asks for date-times
        self._date_form_known = False  # an export was created, or the form switched once
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
        """POST /exports for a window. The model gives dateStart and dateEnd `format: date`,
        but its example body sends "2024-07-01T00:00:00" / "2024-07-30T23:59:59": dates go
        first, and a 400 about them before any export was created switches, once, to
        date-times (the form that works is kept for the sync)."""
        response = self._send("POST", "exports", json=self._body(window))
        if response.status_code == 400:
            refusal = _refusal(response, window)
            if isinstance(refusal, DateRangeRefused) or self._date_form_known:
                raise refusal
            if not _about_dates(response):
                raise refusal
            self._date_form_known = True
            self._date_times = not self._date_times
            form = "date-times (YYYY-MM-DDTHH:MM:SS)" if self._date_times else "dates (YYYY-MM-DD)"
            self._stream.logger.info(
                f"createInvoicesExport refused the window's dates ({amazon_error(response)}): "
                f"sending {form} from now on, as the other reading of the API model says."
            )
            return self.create_export(window)
        self._date_form_known = True
        export_id = json_body(response).get("exportId")
        if not export_id:
            raise AirbyteTracedException(
                message=f"createInvoicesExport for {window} answered without an exportId."
            )
        return str(export_id)

    def _body(self, window: Window) -> dict[str, Any]:
        config = self._stream.config
        first, last = window.first.isoformat(), window.last.isoformat()
        if self._date_times:  # the model's example: the first and the last second, inclusive
            first, last = f"{first}T00:00:00", f"{last}T23:59:59"
        return {
            "marketplaceId": config.marketplace_id,
            "dateStart": first,
            "dateEnd": last,
            "fileFormat": "XML",
            **config.filters.export_body(),
        }

    def get_export(self, export_id: str) -> Mapping[str, Any] | None:
        response = self._send("GET", f"exports/{export_id}")
        if response.status_code == 404:
            return None
        return json_body(response).get("export") or {}

    def download_document(self, document_id: str) -> DocumentSource:
        reason = ""
        for attempt in range(1, settings.DOWNLOAD_ATTEMPTS + 1):
            document = json_body(self._send("GET", f"documents/{document_id}"))
            url = (document.get("invoicesDocument") or {}).get("invoicesDocumentUrl")
            if not url:
                raise AirbyteTracedException(
                    message=f"getInvoicesDocument for {document_id} answered without a URL."
                )
            try:
                response = self._stream._downloads.get(
                    url, stream=True, timeout=settings.REQUEST_TIMEOUT
                )
            except requests.RequestException as error:  # its text holds the URL: not logged
                reason = f"the download failed ({type(error).__name__})"
            else:
                if response.ok:
                    # The body arrives in the background; a break in it is the reader's to see.
                    return BackgroundDownload(_body(response))
                reason = f"the download URL answered HTTP {response.status_code}"
                response.close()
            self._stream.logger.warning(
                f"Document {document_id}: {reason}; asking for a fresh URL (attempt {attempt})."
            )
        raise DocumentDownloadFailed(document_id, reason)


# Words of a 400 that refuses the length of a date range, whatever Amazon's exact sentence.
_RANGE_WORDS = ("range", "exceed", "too long", "too large", "maximum", "period", "days")


def _about_dates(response: requests.Response) -> bool:
    """Whether a 400 of createInvoicesExport names dateStart or dateEnd (their form)."""
    words = amazon_error(response).lower()
    return "datestart" in words or "dateend" in words


def _refusal(response: requests.Response, window: Window) -> Exception:
    """A 400 of createInvoicesExport: DateRangeRefused when it is about the length of the date
    range (the pipeline shortens the window), else the sync fails quoting Amazon."""
    answer = amazon_error(response)
    words = answer.lower()
    if window.days > 1 and "date" in words and any(word in words for word in _RANGE_WORDS):
        return DateRangeRefused(answer)
    return AirbyteTracedException(
        message=f"Amazon rejected createInvoicesExport for {window}: {answer}",
        failure_type=FailureType.system_error,
    )


def _body(response: requests.Response) -> Iterator[bytes]:
    """The response's body in chunks; the connection is released however the reading ends."""
    try:
        yield from response.iter_content(settings.DOWNLOAD_CHUNK_BYTES)
    finally:
        response.close()
