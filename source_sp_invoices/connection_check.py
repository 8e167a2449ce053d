"""Checking a connection: one cheap call that proves the credentials, the role and the
endpoint, and a failure told in one line (no retry tracebacks in the log)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from airbyte_cdk.models import SyncMode
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.config import parse_config
from source_sp_invoices.http.auth import LwaAuthenticator
from source_sp_invoices.http.rate_limits import RateLimits
from source_sp_invoices.http.responses import host_of
from source_sp_invoices.streams import InvoiceAttributes

CHECK_MAX_RETRIES = 2  # a check answers in seconds; a sync retries longer


def check_connection(logger: logging.Logger, config: Mapping[str, Any]) -> tuple[bool, str | None]:
    """One getInvoicesAttributes call with the config's credentials: (True, None), or (False,
    the reason in one line, naming the field or the host to fix)."""
    try:
        parsed = parse_config(config)
        stream = InvoiceAttributes(
            parsed, LwaAuthenticator(parsed), RateLimits(), max_retries=CHECK_MAX_RETRIES
        )
        with _one_line_errors(stream.logger):
            options = sum(1 for _ in stream.read_records(sync_mode=SyncMode.full_refresh))
    except AirbyteTracedException as error:
        return False, _check_message(error)
    except requests.RequestException as error:
        return False, f"The request to {host_of(error)} failed: {type(error).__name__}."
    logger.info(f"Check succeeded: getInvoicesAttributes returned {options} option(s).")
    return True, None


class _DropTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


@contextmanager
def _one_line_errors(logger: logging.Logger) -> Iterator[None]:
    """A failed check is reported in one message; the CDK's retry logs drop their tracebacks."""
    dropper = _DropTraceback()
    logger.addFilter(dropper)
    try:
        yield
    finally:
        logger.removeFilter(dropper)


def _check_message(error: AirbyteTracedException) -> str:
    """The user-facing reason of a failed check, naming the host when the network failed."""
    cause = error.__context__  # the CDK raises while handling the last retry's exception
    # The CDK keeps the request of a retried network failure but drops the response: none came.
    if isinstance(cause, requests.RequestException) and cause.response is None and cause.request:
        return (
            f"Could not connect to {host_of(cause)}: {cause}. Check the network and `api_endpoint`."
        )
    return error.message or str(error)
