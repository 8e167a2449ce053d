"""How SP-API answers map to CDK actions, with messages that quote Amazon and the request id."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import requests
from airbyte_cdk.models import FailureType
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
from source_sp_invoices.http import presigned
from source_sp_invoices.http.responses import (
    amazon_error,
    host_of,
    is_json,
    operation_name,
)

# (operation, status) pairs that are answers, not failures: the caller reads the status.
ANSWERS = {
    ("getInvoicesExport", 404),  # the export is gone: the pipeline creates it again
    ("createInvoicesExport", 400),  # the pipeline reads it: a date range too long is learnt
}

PAGED = ("getInvoices", "getInvoicesExports")  # operations paged by nextToken

_REFRESHED_TOKEN_REJECTED = "Refreshed OAuth access token is rejected by the API."  # the CDK's
_RETRIED = " Airbyte retries the sync later; it resumes from its saved state."
_STOPPED = (
    " The sync stops without a retry (`stop_sync_on_rate_limit` is on): stop the other client or "
    "schedule the connections apart, then sync again; it resumes from its saved state."
)
_EXPIRED = "The access token expired; refreshing it and trying again."

ROLE_HINT = (
    "Amazon refused access (403). The SP-API app may lack the restricted Tax Invoicing role, or "
    "the seller's authorization (the refresh token) may not include it: check the app's roles in "
    "Develop Apps and have the seller authorize the app again."
)


class SpApiErrorHandler(HttpStatusErrorHandler):
    """The CDK's default mapping, with SP-API's meanings of 400, 403 and 404 made explicit."""

    def __init__(self, logger: logging.Logger, max_retries: int = settings.MAX_RETRIES) -> None:
        super().__init__(
            logger=logger,
            error_mapping=DEFAULT_ERROR_MAPPING,
            max_retries=max_retries,
            max_time=timedelta(seconds=settings.MAX_RETRY_SECONDS),
        )
        self.last_expired_answer = ""  # operation and Amazon's words of the last expired token

    def interpret_response(
        self, response_or_exception: requests.Response | Exception | None = None
    ) -> ErrorResolution:
        response = response_or_exception
        if isinstance(response, requests.RequestException) and not isinstance(
            response, (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL)
        ):
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message=f"network error ({type(response).__name__}) "
                f"talking to {host_of(response)}",
            )
        if not isinstance(response, requests.Response):
            return super().interpret_response(response_or_exception)
        status = response.status_code
        if response.ok and not is_json(response):
            # A proxy's HTML page or a body cut short: ask again rather than fail on parsing.
            return ErrorResolution(
                response_action=ResponseAction.RETRY,
                failure_type=FailureType.transient_error,
                error_message=f"Amazon answered with a body that is not JSON "
                f"[HTTP {status}, x-amzn-RequestId "
                f"{response.headers.get('x-amzn-RequestId', 'unknown')}]",
            )
        if status < 400:
            return super().interpret_response(response)
        operation = operation_name(response)
        if status == 429 or status >= 500:
            # Retried as the CDK's mapping says; the message (logged on each retry and shown if
            # retries run out) quotes Amazon and the request id, for a support case.
            resolution = super().interpret_response(response)
            return ErrorResolution(
                response_action=resolution.response_action,
                failure_type=resolution.failure_type,
                error_message=f"{operation} answered HTTP {status}: {amazon_error(response)}",
            )
        if status == 400 and operation in PAGED and "nextToken=" in (response.request.url or ""):
            # A later page refused: the stream tries the model's other reading of nextToken.
            return ErrorResolution(
                response_action=ResponseAction.IGNORE,
                failure_type=None,
                error_message=f"{operation} refused a later page: {amazon_error(response)}",
            )
        if (operation, status) in ANSWERS:
            return ErrorResolution(
                response_action=ResponseAction.IGNORE, failure_type=None, error_message=None
            )
        if status == 403 and "expired" in response.text.lower():
            # Kept for the message if the refreshed token is refused too: the CDK's says nothing
            # of Amazon's answer.
            self.last_expired_answer = f"{operation}: {amazon_error(response)}"
            return ErrorResolution(
                response_action=ResponseAction.REFRESH_TOKEN_THEN_RETRY,
                failure_type=FailureType.transient_error,
                error_message=f"{_EXPIRED} {self.last_expired_answer}",
            )
        if status in (401, 403):
            return ErrorResolution(
                response_action=ResponseAction.FAIL,
                failure_type=FailureType.config_error,
                error_message=f"{ROLE_HINT} {operation}: {amazon_error(response)}",
            )
        return ErrorResolution(
            response_action=ResponseAction.FAIL,
            failure_type=FailureType.system_error,
            error_message=f"Amazon rejected {operation}: {amazon_error(response)}",
        )


class SpApiHttpClient(HttpClient):
    """The CDK's HTTP client, whose message when 429 retries run out quotes Amazon, and which
    never prints a pre-signed URL an answer carries.

    The CDK says only "API rate limit exceeded." and keeps the last answer in its internal
    message; Airbyte users see the message, and Amazon's support asks for the request id.
    Such a failure is transient (Airbyte retries the sync, which resumes from its state), or a
    config error that Airbyte does not retry when the user set `stop_sync_on_rate_limit`.
    """

    def __init__(
        self,
        *args: Any,
        error_handler: SpApiErrorHandler,
        stop_sync_on_rate_limit: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, error_handler=error_handler, **kwargs)
        self._handler = error_handler  # its last expired answer names what Amazon refused
        # getInvoicesDocument's answer holds a pre-signed URL, a credential. The CDK's _send
        # logs "Receiving response" with the whole body at DEBUG as soon as the session returns,
        # before our code sees it, and masks only the values in its secret filter: a response
        # hook runs inside session.send, so the URL's secrets are in the filter before then.
        self._session.hooks["response"].append(presigned.hide_in_answer)
        self._stop_on_rate_limit = stop_sync_on_rate_limit

    def send_request(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send_request(*args, **kwargs)
        except AirbyteTracedException as error:
            if error.message == _REFRESHED_TOKEN_REJECTED:
                answer = self._handler.last_expired_answer
                raise _refreshed_token_rejected(error, answer) from error
            # The CDK raises its exception while handling the last retry's: that is the context.
            cause = error.__context__
            response = getattr(cause, "response", None)
            if not isinstance(response, requests.Response) or response.status_code != 429:
                raise
            raise AirbyteTracedException(
                message="Amazon kept answering 429 (too many requests) to "
                f"{operation_name(response)} through "
                f"every retry: {amazon_error(response)}. The connector paces its own calls, so "
                "another client is using this seller's and application's limits."
                + (_STOPPED if self._stop_on_rate_limit else _RETRIED),
                internal_message=error.internal_message,
                failure_type=FailureType.config_error
                if self._stop_on_rate_limit
                else FailureType.transient_error,
                exception=cause,
            ) from error


def _refreshed_token_rejected(error: AirbyteTracedException, answer: str) -> AirbyteTracedException:
    """The CDK's message when a fresh token is refused too, with Amazon's answer and a fix."""
    answer = f": {answer}" if answer else ""
    return AirbyteTracedException(
        message=f"Amazon refused the access token again right after it was refreshed{answer}. "
        "The seller's authorization may have been revoked, or the refresh token may belong to "
        "another application than the LWA client ID: have the seller authorize the app again and "
        "paste the new refresh token.",
        internal_message=error.internal_message,
        failure_type=FailureType.config_error,
    )
