"""SourceSpInvoices: checks a connection and lists the streams of a config."""

from __future__ import annotations

import logging
from typing import Any, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

import requests
from airbyte_cdk.models import AirbyteConnectionStatus, Status, SyncMode
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.auth import LwaAuthenticator
from source_sp_invoices.config import Config, parse_config
from source_sp_invoices.rate_limits import RateLimits
from source_sp_invoices.streams import InvoiceAttributes, Invoices

CHECK_MAX_RETRIES = 2  # a check answers in seconds; a sync retries longer


class SourceSpInvoices(AbstractSource):
    """Amazon SP-API Invoices (Brazil NF-e) source."""

    # parse_config validates against the spec itself, with messages that name the field.
    check_config_against_spec = False

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        # The CDK's check() shows repr(message); Airbyte users should read the message itself.
        succeeded, message = self.check_connection(logger, config)
        if succeeded:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED)
        return AirbyteConnectionStatus(status=Status.FAILED, message=str(message))

    def check_connection(
        self, logger: logging.Logger, config: Mapping[str, Any]
    ) -> Tuple[bool, Optional[Any]]:
        try:
            parsed = parse_config(config)
            stream = InvoiceAttributes(
                parsed, LwaAuthenticator(parsed), RateLimits(), max_retries=CHECK_MAX_RETRIES
            )
            options = sum(1 for _ in stream.read_records(sync_mode=SyncMode.full_refresh))
        except AirbyteTracedException as error:
            return False, _check_message(error, config)
        except requests.RequestException as error:
            return False, f"The request to {_host_of(error)} failed: {type(error).__name__}."
        logger.info(f"Check succeeded: getInvoicesAttributes returned {options} option(s).")
        return True, None

    def streams(self, config: Mapping[str, Any]) -> List[Stream]:
        parsed: Config = parse_config(config)
        authenticator = LwaAuthenticator(parsed)
        rate_limits = RateLimits()  # shared: all streams learn Amazon's applied rates together
        return [
            InvoiceAttributes(parsed, authenticator, rate_limits),
            Invoices(parsed, authenticator, rate_limits),
        ]


def _check_message(error: AirbyteTracedException, config: Mapping[str, Any]) -> str:
    """The user-facing reason of a failed check, naming the unreachable host if that was it."""
    cause = error.__cause__ or getattr(error, "_exception", None)
    while cause is not None and not isinstance(cause, requests.ConnectionError):
        response = getattr(cause, "response", None)
        cause = response if isinstance(response, requests.RequestException) else cause.__cause__
    if isinstance(cause, requests.ConnectionError):
        return f"Could not connect to {_host_of(cause)}: check the network and `api_endpoint`."
    return error.message or str(error)


def _host_of(error: requests.RequestException) -> str:
    request = error.request
    url = getattr(request, "url", None) or ""
    return urlsplit(url).netloc or "the SP-API endpoint"
