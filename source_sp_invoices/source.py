"""SourceSpInvoices: checks a connection and lists the streams of a config."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import partial
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
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.auth import LwaAuthenticator
from source_sp_invoices.config import Config, parse_config
from source_sp_invoices.document_cache import DocumentCache
from source_sp_invoices.errors import host_of
from source_sp_invoices.interleave import interleave
from source_sp_invoices.rate_limits import RateLimits, SpApiBudget
from source_sp_invoices.streams import (
    InvoiceAttributes,
    InvoiceDocuments,
    InvoiceExports,
    InvoiceItems,
    Invoices,
)

CHECK_MAX_RETRIES = 2  # a check answers in seconds; a sync retries longer


SIMPLE_STREAMS = (InvoiceAttributes, Invoices, InvoiceExports)
DOCUMENT_STREAMS = (InvoiceDocuments.name, InvoiceItems.name)  # read in order: items reuse


class SourceSpInvoices(AbstractSource):
    """Amazon SP-API Invoices (Brazil NF-e) source."""

    _share_documents = False

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
        documents = DocumentCache()
        documents.share = self._share_documents
        return [
            *(stream(parsed, authenticator, rate_limits, budget) for stream in SIMPLE_STREAMS),
            *(
                stream(parsed, authenticator, rate_limits, budget, cache=documents)
                for stream in (InvoiceDocuments, InvoiceItems)
            ),
        ]

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        # With both document streams selected, the second reuses the first's exports and
        # downloads: each document is fetched once per sync.
        selected = {configured.stream.name for configured in catalog.streams}
        self._share_documents = set(DOCUMENT_STREAMS) <= selected
        documents = [c for c in catalog.streams if c.stream.name in DOCUMENT_STREAMS]
        others = [c for c in catalog.streams if c.stream.name not in DOCUMENT_STREAMS]
        if not (documents and others):
            yield from super().read(logger, config, catalog, state)
            return
        # The export streams' operations have rate limits of their own (one document a minute):
        # they are read at the same time as the other streams, each group in its own order.
        logger.info(
            f"Reading {', '.join(c.stream.name for c in documents)} and "
            f"{', '.join(c.stream.name for c in others)} at the same time: their operations "
            "have separate rate limits."
        )
        read = super().read
        yield from interleave(
            [
                partial(read, logger, config, ConfiguredAirbyteCatalog(streams=group), state)
                for group in (others, documents)
            ]
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
