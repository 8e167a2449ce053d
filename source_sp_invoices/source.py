"""SourceSpInvoices: checks a connection and lists the streams of a config."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    Status,
    SyncMode,
)
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.utils.schema_helpers import split_config
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.auth import LwaAuthenticator
from source_sp_invoices.config import Config, parse_config
from source_sp_invoices.errors import host_of
from source_sp_invoices.rate_limits import RateLimits, SpApiBudget
from source_sp_invoices.read_together import read_together
from source_sp_invoices.streams import (
    InvoiceAttributes,
    InvoiceDocuments,
    InvoiceExports,
    InvoiceItems,
    Invoices,
)

CHECK_MAX_RETRIES = 2  # a check answers in seconds; a sync retries longer


STREAMS = (InvoiceAttributes, Invoices, InvoiceExports, InvoiceDocuments, InvoiceItems)


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
    ) -> tuple[bool, Any | None]:
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

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        parsed: Config = parse_config(config)
        authenticator = LwaAuthenticator(parsed)
        # Shared by all streams: Amazon's limits apply per seller and application, not per stream.
        rate_limits = RateLimits()
        budget = SpApiBudget(rate_limits)
        return [stream(parsed, authenticator, rate_limits, budget) for stream in STREAMS]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        # The document streams are read in one pass that shares each document between them,
        # beside the CDK's loop over the other streams: see read_together.py.
        yield from read_together(
            logger,
            catalog,
            state,
            cdk_read=lambda part: super(SourceSpInvoices, self).read(logger, config, part, state),
            document_streams=lambda: {s.name: s for s in self.streams(split_config(config)[0])},
        )


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
    cause = getattr(error, "_exception", None)
    # The CDK keeps the request of a retried network failure but drops the response: none came.
    if isinstance(cause, requests.RequestException) and cause.response is None and cause.request:
        return (
            f"Could not connect to {host_of(cause)}: {cause}. Check the network and `api_endpoint`."
        )
    return error.message or str(error)
