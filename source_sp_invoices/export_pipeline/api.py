"""The export pipeline's calls to Amazon: createInvoicesExport, getInvoicesExport and
getInvoicesDocument with its download, in whichever form the API model's readings need."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.http_client import HttpClient
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.config import Config
from source_sp_invoices.export_pipeline.downloads import BackgroundDownload, DocumentSource
from source_sp_invoices.export_pipeline.pipeline import DateRangeRefused
from source_sp_invoices.export_pipeline.windows import Window
from source_sp_invoices.http import presigned
from source_sp_invoices.http.rate_limits import RateLimits, SpApiBudget
from source_sp_invoices.http.responses import amazon_error, json_body


class DocumentDownloadFailed(AirbyteTracedException):
    def __init__(self, document_id: str, reason: str) -> None:
        message = (
            f"Document {document_id} could not be downloaded with {settings.DOWNLOAD_ATTEMPTS} "
            f"fresh URLs: {reason}"
        )
        super().__init__(
            message=message, internal_message=message, failure_type=FailureType.transient_error
        )


class SpApiExports:
    """The pipeline's calls to Amazon over a stream's CDK HTTP client (retries, error mapping,
    call budget), and the pace the usage plans allow them."""

    def __init__(
        self,
        config: Config,
        client: HttpClient,
        url_base: str,
        budget: SpApiBudget,
        rate_limits: RateLimits,
        logger: logging.Logger,
    ) -> None:
        self._config = config
        self._client = client
        self._base = url_base
        self._budget = budget
        self._rate_limits = rate_limits
        self._logger = logger
        self._date_times = False  # dates (format: date) until Amazon asks for date-times
        self._date_form_known = False  # an export was created, or the form switched once
        # Not the CDK's HTTP client: it logs a request's URL when it ignores or retries an
        # answer, and the response's body on retries, and a pre-signed URL is a credential (its
        # query string grants access to the document; an S3 error body can quote it). Downloads
        # go through a session of their own with no SP-API or LWA header; a failed download is
        # tried again with a fresh URL (see download_document), never logged. The URL's secrets
        # are in the CDK's secret filter besides (http/presigned.py), for whatever quotes it.
        self._downloads = requests.Session()

    def document_slot_wait(self) -> float:
        """Seconds until getInvoicesDocument may be called again (one call a minute)."""
        return self._budget.wait_time("getInvoicesDocument")

    def create_slot_wait(self) -> float:
        """Seconds until createInvoicesExport may be called again."""
        return self._budget.wait_time("createInvoicesExport")

    def seconds_between_polls(self) -> float:
        """Seconds between two calls of getInvoicesExport at the rate Amazon applies."""
        return 1 / self._rate_limits.rate("getInvoicesExport")

    def seconds_per_document(self) -> float:
        """Seconds per document at the rate Amazon applies to getInvoicesDocument."""
        return 1 / self._rate_limits.rate("getInvoicesDocument")

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
        if response.status_code == 400 and not self._date_form_known and _about_dates(response):
            response = self._other_form(window, response)
        if response.status_code == 400:
            raise _refusal(response, window)
        self._date_form_known = True
        export_id = json_body(response).get("exportId")
        if not export_id:
            raise AirbyteTracedException(
                message=f"createInvoicesExport for {window} answered without an exportId."
            )
        return str(export_id)

    def _other_form(self, window: Window, refused: requests.Response) -> requests.Response:
        """While the form is not known, a 400 naming dateStart or dateEnd is taken for a
        refusal of the form before anything else, even when its words sound like a refusal of
        the range (a refusal of dateStart's form that speaks of "the period", on a window of
        days): the window is sent once in the other form, and the answer that counts is
        returned. Amazon takes it, or refuses it for something else than its dates (it got
        past the form): that form is kept, said once, and that answer counts. Amazon refuses
        its dates too: the answer that reads as a range too long came in the form Amazon takes,
        so that form is kept and that answer returned (the pipeline shortens the window); when
        both or neither read so, the first form stays unknown and the first answer counts."""
        self._date_times = not self._date_times
        answer = self._send("POST", "exports", json=self._body(window))
        if answer.status_code != 400 or not _about_dates(answer):
            self._switched(refused)
            return answer
        if _too_long(answer, window) and not _too_long(refused, window):
            self._switched(refused)
            return answer
        self._date_times = not self._date_times
        self._date_form_known = _too_long(refused, window) and not _too_long(answer, window)
        return refused

    def _switched(self, refused: requests.Response) -> None:
        """The form Amazon takes is learnt: kept for the sync, said once."""
        self._date_form_known = True
        form = "date-times (YYYY-MM-DDTHH:MM:SS)" if self._date_times else "dates (YYYY-MM-DD)"
        self._logger.info(
            f"createInvoicesExport refused the window's dates ({amazon_error(refused)}): "
            f"sending {form} from now on, as the other reading of the API model says."
        )

    def _body(self, window: Window) -> dict[str, Any]:
        config = self._config
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
            presigned.hide(url)  # SpApiHttpClient's hook did; again for an answer from elsewhere
            try:
                response = self._downloads.get(url, stream=True, timeout=settings.REQUEST_TIMEOUT)
            except requests.RequestException as error:  # its text holds the URL: not logged
                reason = f"the download failed ({type(error).__name__})"
            else:
                if response.ok:
                    # The body arrives in the background; a break in it is the reader's to see.
                    return BackgroundDownload(_body(response))
                reason = f"the download URL answered HTTP {response.status_code}"
                response.close()
            self._logger.warning(
                f"Document {document_id}: {reason}; asking for a fresh URL (attempt {attempt})."
            )
        raise DocumentDownloadFailed(document_id, reason)


# Words of a 400 that refuses the length of a date range, whatever Amazon's exact sentence. A
# guess: the model documents no such limit nor its wording (its only 400 example is "Request has
# missing or invalid parameters and cannot be parsed."), so any 400 that speaks of a date and of
# a range, a maximum, a period or days is taken for one; any other 400 fails the sync quoting
# Amazon (unit_tests/test_streams_exports.py checks both).
_RANGE_WORDS = ("range", "exceed", "too long", "too large", "maximum", "period", "days")


def _about_dates(response: requests.Response) -> bool:
    """Whether a 400 of createInvoicesExport names dateStart or dateEnd (their form)."""
    words = amazon_error(response).lower()
    return "datestart" in words or "dateend" in words


def _too_long(response: requests.Response, window: Window) -> bool:
    """Whether a 400 of createInvoicesExport reads as a refusal of the length of the window's
    date range (a window of one day cannot be shortened)."""
    words = amazon_error(response).lower()
    return window.days > 1 and "date" in words and any(word in words for word in _RANGE_WORDS)


def _refusal(response: requests.Response, window: Window) -> Exception:
    """A 400 of createInvoicesExport: DateRangeRefused when it is about the length of the date
    range (the pipeline shortens the window), else the sync fails quoting Amazon."""
    answer = amazon_error(response)
    if _too_long(response, window):
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
