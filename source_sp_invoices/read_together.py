"""How the streams of a catalog are read together.

The export streams (invoice_documents, invoice_items) are read by one DocumentPass, which shares
each document between them; the other streams by the CDK's own loop (AbstractSource.read). The
two groups' operations have separate rate limits (one document a minute against one getInvoices
page every ten seconds), so when both are selected each group is read in its own thread and
their messages are merged as they come (interleave.py): a sync takes as long as the slower
group, not as long as both.

Export windows are planned from the invoices getInvoices lists for each day
(export_pipeline/planner.py), and the days an incremental sync looks back at are exported again
only when what getInvoices lists of them changed (export_pipeline/changed_days.py). When
`invoices` is selected, its own pages are counted and compared as the CDK's loop reads them; what
it does not list is listed, for counting and comparing only, by a third thread
(count_listing.py), which emits nothing.

What the threads share, and why that is safe:
- Only one thread runs the CDK's loop, with the source's stream map and the CDK's module-level
  message repository. The document thread uses neither: it has stream instances of its own (own
  HTTP clients and LWA authenticator) and emits its streams' status messages itself, as the
  CDK's loop would.
- The call budget and the rates learnt from Amazon are the source's, one for every thread:
  Amazon's usage plans apply per seller and application, and getInvoices is called from two
  threads (the `invoices` stream, the counting listing). The budget's buckets take a lock.
- The counts of each day (InvoiceCounts) take a lock; the listings write, the pass reads.
- Loggers: the document thread logs through the source's logger and its streams' loggers, the
  CDK thread through its streams' loggers; Python's loggers lock their handlers, and log lines
  and messages reach stdout through the CDK's PRINT_BUFFER, whose lock keeps every line whole
  from any thread (the CDK's own concurrent read relies on it too).
- The CDK's HttpClient prints a stream's RUNNING status with the RATE_LIMITED reason straight to
  stdout, from whichever thread meets the 429, not through the messages merged here (its own
  TODO says so). That line can reach stdout a moment before or after a message of the same
  stream still queued in interleave.py; the CDK's concurrent read has the same race, and the
  platform takes such a status as information, not as a transition.

Why the other streams are not read by the CDK's concurrent framework either: the three of them
are one request at a time each (a getInvoices page every ten seconds at most), so threads would
not make them faster, and moving them would change the shape of the states they write
(invoices' `resume_from` beside its cursor), which every saved connection would then need
migrated; the one split that pays, documents apart from the rest, is made here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any

from airbyte_cdk.models import (
    AirbyteMessage,
    AirbyteStateMessage,
    AirbyteStreamStatus,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    FailureType,
    StreamDescriptor,
)
from airbyte_cdk.models import Type as MessageType
from airbyte_cdk.sources.connector_state_manager import ConnectorStateManager
from airbyte_cdk.sources.streams import Stream
from airbyte_cdk.utils.stream_status_utils import as_airbyte_message as stream_status
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices.count_listing import CountListing
from source_sp_invoices.export_pipeline.document_pass import DocumentPass
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts
from source_sp_invoices.interleave import interleave
from source_sp_invoices.streams.invoices import Invoices

DOCUMENT_STREAMS = ("invoice_documents", "invoice_items")

CdkRead = Callable[[ConfiguredAirbyteCatalog], Iterator[AirbyteMessage]]


def read_together(
    logger: logging.Logger,
    catalog: ConfiguredAirbyteCatalog,
    state: list[AirbyteStateMessage] | None,
    cdk_read: CdkRead,
    document_streams: Callable[[], Mapping[str, Stream]],
    counts: InvoiceCounts | None = None,
) -> Iterator[AirbyteMessage]:
    """Every message of the catalog's streams: the document streams in one pass, the others
    through `cdk_read` (the CDK's loop over a catalog), both groups at the same time.

    `counts` is what the source's `invoices` streams count into (source.py wires them); it is
    needed when a document stream is selected."""
    documents = [c for c in catalog.streams if c.stream.name in DOCUMENT_STREAMS]
    # `invoices` first among the others: its pages are what the export plan is counted from.
    others = sorted(
        (c for c in catalog.streams if c.stream.name not in DOCUMENT_STREAMS),
        key=lambda c: c.stream.name != Invoices.name,
    )
    if not documents:
        yield from cdk_read(catalog)
        return
    assert counts is not None, "the source's invoices streams count for the export plan"
    invoices = next((c for c in others if c.stream.name == Invoices.name), None)
    if invoices is not None:
        _announce_listing(counts, invoices, state, document_streams)
    read_documents = partial(_read_documents, logger, documents, state, document_streams, counts)
    if not others:
        yield from read_documents()
        return
    logger.info(
        f"Reading {', '.join(c.stream.name for c in documents)} and "
        f"{', '.join(c.stream.name for c in others)} at the same time: their operations "
        "have separate rate limits."
    )
    yield from interleave(
        [
            partial(_read_others, cdk_read, ConfiguredAirbyteCatalog(streams=others), counts),
            read_documents,
        ]
    )


def _announce_listing(
    counts: InvoiceCounts,
    configured: ConfiguredAirbyteStream,
    state: list[AirbyteStateMessage] | None,
    document_streams: Callable[[], Mapping[str, Stream]],
) -> None:
    """Tell the counts what the `invoices` stream will list, before any thread starts, so that
    the counting listing never asks for the same days."""
    invoices = document_streams()[Invoices.name]
    assert isinstance(invoices, Invoices)
    invoices.state = saved_state(ConnectorStateManager(state=state), configured)
    assert invoices.counts is counts
    invoices.announce(configured.sync_mode)


def _read_others(
    cdk_read: CdkRead, catalog: ConfiguredAirbyteCatalog, counts: InvoiceCounts
) -> Iterator[AirbyteMessage]:
    """The CDK's loop over the other streams; once it ends, whatever the `invoices` stream did
    not list is the counting listing's to list."""
    try:
        yield from cdk_read(catalog)
    finally:
        counts.stream_stopped("the CDK's loop ended")


def _read_documents(
    logger: logging.Logger,
    configured: Sequence[ConfiguredAirbyteStream],
    state: list[AirbyteStateMessage] | None,
    document_streams: Callable[[], Mapping[str, Stream]],
    counts: InvoiceCounts,
) -> Iterator[AirbyteMessage]:
    """The document streams' messages with the stream statuses the CDK's loop would emit:
    STARTED, RUNNING at a stream's first record, then COMPLETE, or INCOMPLETE and an error
    trace for each stream when the pass fails (the sync then ends in that error)."""
    for stream in configured:
        logger.info(f"Marking stream {stream.stream.name} as STARTED")
        yield stream_status(stream.stream, AirbyteStreamStatus.STARTED)
    running: set[str] = set()
    listing: CountListing | None = None
    try:
        instances = document_streams()
        manager = ConnectorStateManager(state=state)
        selected = []
        for stream in configured:
            instance = instances[stream.stream.name]
            instance.state = saved_state(manager, stream)  # type: ignore[attr-defined]  # checked there
            selected.append((instance, stream.sync_mode))
        document_pass = DocumentPass(selected, counts)  # type: ignore[arg-type]
        days, compared, kept = document_pass.listing_needs()
        if days or compared or kept:
            invoices = instances[Invoices.name]
            assert isinstance(invoices, Invoices) and invoices.counts is counts
            listing = CountListing(invoices, counts, days, logger, compared, kept)
            listing.start()
        else:
            counts.finish()
        for message in document_pass.messages():
            if message.type == MessageType.RECORD and message.record.stream not in running:  # type: ignore[union-attr]
                name = message.record.stream  # type: ignore[union-attr]
                running.add(name)
                logger.info(f"Marking stream {name} as RUNNING")
                yield stream_status(_stream_of(configured, name), AirbyteStreamStatus.RUNNING)
            yield message
    except Exception as error:
        if listing is not None:
            listing.stop()
        traced = (
            error
            if isinstance(error, AirbyteTracedException)
            else AirbyteTracedException.from_exception(error)
        )
        logger.error(f"Reading {_names(configured)} failed: {traced.message}")
        for stream in configured:
            logger.info(f"Marking stream {stream.stream.name} as STOPPED")
            yield stream_status(stream.stream, AirbyteStreamStatus.INCOMPLETE)
            yield traced.as_sanitized_airbyte_message(
                stream_descriptor=StreamDescriptor(name=stream.stream.name)
            )
        # The error trace of each stream carries the reason; this one ends the sync non-zero,
        # as the CDK's loop ends it when a stream failed.
        raise AirbyteTracedException(
            message=f"During the sync, {_names(configured)} did not sync successfully: "
            f"{traced.message}",
            internal_message=traced.internal_message,
            failure_type=traced.failure_type or FailureType.system_error,
        ) from error
    if listing is not None:
        listing.stop()
    for stream in configured:
        logger.info(f"Marking stream {stream.stream.name} as STOPPED")
        yield stream_status(stream.stream, AirbyteStreamStatus.COMPLETE)


def check_saved_states(
    streams: Mapping[str, Stream],
    catalog: ConfiguredAirbyteCatalog,
    state: list[AirbyteStateMessage] | None,
) -> None:
    """Hand each selected stream its saved state, as its read will: a state it cannot use
    raises its ConfigError here, before any stream starts, rather than inside that stream's read
    (where it would end the stream with a traceback, beside the other streams' statuses)."""
    manager = ConnectorStateManager(state=state)
    for configured in catalog.streams:
        stream = streams.get(configured.stream.name)
        if stream is not None and "state" in dir(stream):  # as the CDK's loop tells them
            stream.state = saved_state(manager, configured)  # type: ignore[attr-defined]


def saved_state(
    manager: ConnectorStateManager, configured: ConfiguredAirbyteStream
) -> dict[str, Any]:
    """A stream's saved state as the CDK's loop hands it over: its marker of a finished full
    refresh without a cursor is no state."""
    saved = manager.get_stream_state(configured.stream.name, configured.stream.namespace)
    return {} if saved == {"__ab_no_cursor_state_message": True} else dict(saved or {})


def _stream_of(configured: Sequence[ConfiguredAirbyteStream], name: str) -> Any:
    return next(c.stream for c in configured if c.stream.name == name)


def _names(configured: Sequence[ConfiguredAirbyteStream]) -> str:
    return " and ".join(c.stream.name for c in configured)
