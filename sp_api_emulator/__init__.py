"""A local emulator of the Amazon SP-API Invoices API v2024-06-19 and of Login with Amazon.

It serves a seeded, generated set of Brazilian FBA invoices over real HTTP on a loopback port,
with LWA tokens, usage-plan rate limits, fault injection and request statistics, so the
connector can be tested end to end without Amazon:

    dataset = Dataset.generate(seed=42, start=date(2024, 7, 1), days=10)
    with EmulatorServer(dataset, time_scale=60) as server:
        config = server.connector_config("2024-07-01T00:00:00Z")

The export side serves what Amazon's does: exports that move REQUESTED -> PROCESSING -> DONE on
the scaled clock, documents of NF-e 4.00 XML files in ZIPs behind 30-second pre-signed URLs.

Where Amazon's model contradicts itself, `Readings` picks the reading served (README.md):

    EmulatorServer(dataset, readings=Readings(pagination="same_arguments", document_body="xml"))

Standard library only.
"""

from .catalog import MARKETPLACE_ID
from .clock import ManualClock, ScaledClock, WallClock
from .dataset import Dataset, InvoiceFilter, day_bounds
from .exports import (
    EXPORT_STATUSES,
    REPORTS_EXPORT_STATUSES,
    Document,
    Export,
    ExportRegistry,
    ExportTiming,
)
from .faults import DOWNLOAD_OPERATION, Faults
from .generator import day_counts, day_profile, spread
from .lwa import TEST_CLIENT_ID, TEST_CLIENT_SECRET, TEST_REFRESH_TOKEN, LwaCredentials
from .models import Invoice
from .nfe_xml import ENCODINGS, encoding_for
from .nfe_xml import render as render_nfe
from .presign import DOWNLOAD_PREFIX, URL_TTL
from .rate_limits import API_PREFIX, USAGE_PLANS, RateLimiter, TokenBucket, UsagePlan
from .readings import CHOICES, Readings
from .server import LWA_PATH, EmulatorServer
from .stats import Stats

__all__ = [
    "API_PREFIX",
    "CHOICES",
    "DOWNLOAD_OPERATION",
    "DOWNLOAD_PREFIX",
    "ENCODINGS",
    "EXPORT_STATUSES",
    "LWA_PATH",
    "MARKETPLACE_ID",
    "REPORTS_EXPORT_STATUSES",
    "TEST_CLIENT_ID",
    "TEST_CLIENT_SECRET",
    "TEST_REFRESH_TOKEN",
    "URL_TTL",
    "USAGE_PLANS",
    "Dataset",
    "Document",
    "EmulatorServer",
    "Export",
    "ExportRegistry",
    "ExportTiming",
    "Faults",
    "Invoice",
    "InvoiceFilter",
    "LwaCredentials",
    "ManualClock",
    "RateLimiter",
    "Readings",
    "ScaledClock",
    "Stats",
    "TokenBucket",
    "UsagePlan",
    "WallClock",
    "day_bounds",
    "day_counts",
    "day_profile",
    "encoding_for",
    "render_nfe",
    "spread",
]
