"""SourceSpInvoices: checks a connection and lists the streams of a config."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from airbyte_cdk.models import (
    AirbyteConnectionStatus,
    AirbyteMessage,
    AirbyteStateMessage,
    ConfiguredAirbyteCatalog,
    Status,
)
from airbyte_cdk.sources import AbstractSource
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.sources.utils.schema_helpers import split_config

from source_sp_invoices.config import Config, parse_config
from source_sp_invoices.connection_check import check_connection
from source_sp_invoices.export_pipeline.file_staging import (
    FileStager,
    files_asked_for,
    staging_root,
)
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts
from source_sp_invoices.http.auth import LwaAuthenticator
from source_sp_invoices.http.rate_limits import RateLimits, SpApiBudget
from source_sp_invoices.read_together import DOCUMENT_STREAMS, check_saved_states, read_together
from source_sp_invoices.streams import (
    InvoiceAttributes,
    InvoiceDocuments,
    InvoiceExports,
    InvoiceItems,
    Invoices,
)

STREAMS = (InvoiceAttributes, Invoices, InvoiceExports, InvoiceDocuments, InvoiceItems)


class SourceSpInvoices(AbstractSource):
    """Amazon SP-API Invoices (Brazil NF-e) source."""

    # parse_config validates against the spec itself, with messages that name the field.
    check_config_against_spec = False

    def __init__(self) -> None:
        super().__init__()
        # Set by read for its streams: one call budget for every thread of the sync, and the
        # invoices of each day that the `invoices` stream counts for the export plan.
        self._budget: tuple[RateLimits, SpApiBudget] | None = None
        self._counts: InvoiceCounts | None = None
        # Set by read when invoice_documents delivers its files (file transfer).
        self._files: FileStager | None = None

    def check(self, logger: logging.Logger, config: Mapping[str, Any]) -> AirbyteConnectionStatus:
        # The CDK's check() shows repr(message); Airbyte users should read the message itself.
        succeeded, message = self.check_connection(logger, config)
        if succeeded:
            return AirbyteConnectionStatus(status=Status.SUCCEEDED)
        return AirbyteConnectionStatus(status=Status.FAILED, message=str(message))

    def check_connection(
        self, logger: logging.Logger, config: Mapping[str, Any]
    ) -> tuple[bool, Any | None]:
        return check_connection(logger, config)

    def streams(self, config: Mapping[str, Any]) -> list[Stream]:
        parsed: Config = parse_config(config)
        authenticator = LwaAuthenticator(parsed)
        # Shared by all streams: Amazon's limits apply per seller and application, not per stream.
        rate_limits, budget = self._budget or _new_budget()
        streams = [stream(parsed, authenticator, rate_limits, budget) for stream in STREAMS]
        for stream in streams:
            if isinstance(stream, Invoices):
                stream.counts = self._counts
            elif isinstance(stream, InvoiceDocuments):
                stream.files = self._files
        return streams

    def read(
        self,
        logger: logging.Logger,
        config: Mapping[str, Any],
        catalog: ConfiguredAirbyteCatalog,
        state: list[AirbyteStateMessage] | None = None,
    ) -> Iterator[AirbyteMessage]:
        # What the user must fix is refused before any stream starts, as the one config error
        # that run.py reports, as for check and discover: a bad config value (parse_config, in
        # streams()) or a saved state a selected stream cannot use. Found inside a stream's
        # read, it would end that stream (and the pass of both document streams) with a
        # traceback, and be said again in the sync's summary.
        streams = self.streams(split_config(config)[0])
        check_saved_states({s.name: s for s in streams}, catalog, state)
        # So is a staging folder the invoice files cannot be written to.
        documents = next(s for s in streams if isinstance(s, InvoiceDocuments))
        self._files = _file_stager(documents.config, catalog, logger)
        self._budget = _new_budget()
        if any(c.stream.name in DOCUMENT_STREAMS for c in catalog.streams):
            self._counts = InvoiceCounts()
        # The document streams are read in one pass that shares each document between them,
        # beside the CDK's loop over the other streams: see read_together.py.
        yield from read_together(
            logger,
            catalog,
            state,
            cdk_read=lambda part: super(SourceSpInvoices, self).read(logger, config, part, state),
            document_streams=lambda: {s.name: s for s in self.streams(split_config(config)[0])},
            counts=self._counts,
        )


def _file_stager(
    config: Config, catalog: ConfiguredAirbyteCatalog, logger: logging.Logger
) -> FileStager | None:
    """The stager of invoice_documents' files when this sync delivers them (file transfer)."""
    documents = next((c for c in catalog.streams if c.stream.name == InvoiceDocuments.name), None)
    why = files_asked_for(config, documents, os.environ) if documents else None
    if why is None:
        return None
    return FileStager(staging_root(os.environ), why, logger)


def _new_budget() -> tuple[RateLimits, SpApiBudget]:
    rate_limits = RateLimits()
    return rate_limits, SpApiBudget(rate_limits)
