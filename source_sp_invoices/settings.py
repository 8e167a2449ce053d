"""The facts of the Invoices API as data: endpoints, marketplaces, usage plans and limits.

Everything else refers to these by name, so a change of plan or a new marketplace is one edit.
"""

import os
from dataclasses import dataclass
from typing import Final

API_VERSION_PATH: Final = "tax/invoices/2024-06-19"

LWA_TOKEN_URL: Final = "https://api.amazon.com/auth/o2/token"

# region -> (production base URL, sandbox base URL)
ENDPOINTS: Final[dict[str, dict[str, str]]] = {
    "NA": {
        "PRODUCTION": "https://sellingpartnerapi-na.amazon.com",
        "SANDBOX": "https://sandbox.sellingpartnerapi-na.amazon.com",
    },
    "EU": {
        "PRODUCTION": "https://sellingpartnerapi-eu.amazon.com",
        "SANDBOX": "https://sandbox.sellingpartnerapi-eu.amazon.com",
    },
    "FE": {
        "PRODUCTION": "https://sellingpartnerapi-fe.amazon.com",
        "SANDBOX": "https://sandbox.sellingpartnerapi-fe.amazon.com",
    },
}

BRAZIL_MARKETPLACE_ID: Final = "A2Q3Y263D00KWC"


@dataclass(frozen=True)
class Marketplace:
    """One Amazon marketplace: where it is and which regional endpoint serves it."""

    country: str
    region: str


MARKETPLACES: Final[dict[str, Marketplace]] = {
    "ATVPDKIKX0DER": Marketplace("United States", "NA"),
    "A2EUQ1WTGCTBG2": Marketplace("Canada", "NA"),
    "A1AM78C64UM0Y8": Marketplace("Mexico", "NA"),
    BRAZIL_MARKETPLACE_ID: Marketplace("Brazil", "NA"),
    "A1RKKUPIHCS9HS": Marketplace("Spain", "EU"),
    "A1F83G8C2ARO7P": Marketplace("United Kingdom", "EU"),
    "A13V1IB3VIYZZH": Marketplace("France", "EU"),
    "AMEN7PMS3EDWL": Marketplace("Belgium", "EU"),
    "A1805IZSGTT6HS": Marketplace("Netherlands", "EU"),
    "A1PA6795UKMFR9": Marketplace("Germany", "EU"),
    "APJ6JRA9NG5V4": Marketplace("Italy", "EU"),
    "A2NODRKZP88ZB9": Marketplace("Sweden", "EU"),
    "AE08WJ6YKNBMC": Marketplace("South Africa", "EU"),
    "A1C3SOZRARQ6R3": Marketplace("Poland", "EU"),
    "ARBP9OOSHTCHU": Marketplace("Egypt", "EU"),
    "A33AVAJ2PDY3EV": Marketplace("Turkey", "EU"),
    "A17E79C6D8DWNP": Marketplace("Saudi Arabia", "EU"),
    "A2VIGQ35RCS4UG": Marketplace("United Arab Emirates", "EU"),
    "A21TJRUUN4KGV": Marketplace("India", "EU"),
    "A28R8C7NBKEWEA": Marketplace("Ireland", "EU"),
    "A19VAU5U5O7RUS": Marketplace("Singapore", "FE"),
    "A39IBJ37TRP1C6": Marketplace("Australia", "FE"),
    "A1VC38T7YXB528": Marketplace("Japan", "FE"),
}


@dataclass(frozen=True)
class UsagePlan:
    """Amazon's default usage plan of one operation; a seller's applied rate may be higher."""

    method: str
    path: str  # relative to API_VERSION_PATH; "{...}" marks a path parameter
    rate: float  # requests per second
    burst: int


USAGE_PLANS: Final[dict[str, UsagePlan]] = {
    "getInvoicesAttributes": UsagePlan("GET", "attributes", 1.0, 1),
    "getInvoices": UsagePlan("GET", "invoices", 0.1, 20),
    "getInvoice": UsagePlan("GET", "invoices/{invoiceId}", 2.0, 15),
    "createInvoicesExport": UsagePlan("POST", "exports", 0.167, 1),
    "getInvoicesExports": UsagePlan("GET", "exports", 0.1, 20),
    "getInvoicesExport": UsagePlan("GET", "exports/{exportId}", 2.0, 15),
    "getInvoicesDocument": UsagePlan("GET", "documents/{invoicesDocumentId}", 0.0167, 1),
}

INVOICES_PAGE_SIZE: Final = 200  # the API's maximum


def _seconds_from_environment(name: str, default: float) -> float:
    """An operator's override of a timeout, in seconds; a clear error if it is not one."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 86400:
        raise ValueError(f"{name} must be a number of seconds between 0 and 86400, not {text!r}")
    return seconds


# (connect, read) seconds: no request may hang forever. The read timeout can be changed with
# SP_INVOICES_READ_TIMEOUT_SECONDS (a slow proxy; the tests, which need timeouts in seconds).
REQUEST_TIMEOUT: Final = (
    10.0,
    _seconds_from_environment("SP_INVOICES_READ_TIMEOUT_SECONDS", 120.0),
)

# (connect, read) seconds of a token request: LWA answers in milliseconds, so a silent token
# endpoint is given up on after 4 tries of 30 s (about 2 minutes), not 4 of REQUEST_TIMEOUT.
LWA_TIMEOUT: Final = (10.0, min(30.0, REQUEST_TIMEOUT[1]))

# Retries of one request after a 5xx, a dropped connection or a 429.
MAX_RETRIES: Final = 8
# Upper bound on the time spent retrying one request (an hour: the slowest operation allows
# one call a minute, so ten minutes of retries can be spent waiting on a handful of calls).
MAX_RETRY_SECONDS: Final = 3600

# The budget paces each operation this much below its applied rate, so that clock drift between
# us and Amazon's token bucket does not end in 429s (2%: 1.2 s a minute for the document call).
PACING_MARGIN: Final = 0.02

# A new access token is fetched this long before the current one expires.
TOKEN_REFRESH_MARGIN_SECONDS: Final = 60

DEFAULT_INVOICES_WINDOW_DAYS: Final = 7
DEFAULT_LOOKBACK_DAYS: Final = 3

# The export pipeline (invoice_documents).
EXPORT_ATTEMPTS: Final = 3  # creations of one window's export before the sync fails
DOWNLOAD_ATTEMPTS: Final = 3  # fresh URLs for one document (expired, truncated) before failing
DEFAULT_EXPORTS_AHEAD: Final = 3  # exports created before the window being downloaded needs them
# Polls of an export, in intervals of getInvoicesExport's applied rate (0.5 s on the default
# plan): the first after 2 (1 s), then doubling up to 20 (10 s). Amazon has no notification;
# a poll costs one call of a plan of 2 a second, and a DONE seen late delays every document.
EXPORT_POLL_FIRST_INTERVALS: Final = 2
EXPORT_POLL_MAX_INTERVALS: Final = 20
# Polls of an export in a status neither reading of the model names before the sync fails
# (with the backoff above, about 15 minutes on the default plan).
EXPORT_UNKNOWN_STATUS_POLLS: Final = 90
EXPORTS_PAGE_SIZE: Final = 100  # getInvoicesExports' maximum
MAX_XML_ENTRY_BYTES: Final = 50 * 1024 * 1024  # an NF-e is 5-20 KB; more is a ZIP bomb
DOWNLOAD_CHUNK_BYTES: Final = 1024 * 1024

# Planning export windows (export_pipeline/planner.py). getInvoicesDocument's one call a minute
# counts documents: windows are planned from getInvoices' counts to fill documents of M invoices.
MAX_DOCUMENTS_PER_EXPORT: Final = 10  # an export Amazon loses costs at most this to redo
PROBE_INVOICES: Final = 2000  # the window that learns M holds this many (or 4x the fullest seen)
PROBE_GROWTH: Final = 4
COUNT_MARGIN_SHARE: Final = 0.01  # of M kept below each multiple of it, before errors are seen
PLAN_HORIZON_DOCUMENTS: Final = 30  # counts this far ahead are enough to plan the next window
# Exports created before the documents already known run out (processing takes a minute or
# two, about two documents), and how few documents left make planning urgent.
EXPORTS_AHEAD_DOCUMENTS: Final = 3
EXPORT_LEAD_DOCUMENTS: Final = 2
# How long the first window of a sync waits for getInvoices' first counts when M is known, and
# how soon a planner that waits for counts or for M is asked again.
FIRST_PLAN_WAIT_SECONDS: Final = 30.0
PLAN_RECHECK_SECONDS: Final = 0.1
