"""The emulator's HTTP server: routing, LWA, access-token checks, rate limits, faults, control.

`EmulatorServer.handle` turns a `Request` into a `Response` without any socket (the whole
behaviour), and a `ThreadingHTTPServer` on a loopback port feeds it real HTTP requests.
Order of checks on an SP-API route, as Amazon's gateway does it: Authorization header refused,
access token, role, rate limit; then injected faults and latency; then the operation itself.

The export documents are served like S3 serves them: under /_s3/documents/ with a pre-signed
query string and no SP-API credentials at all (any are refused), streamed from a ZIP on disk
(or, under the document_body="xml" reading, one invoice's NF-e XML).

Where the model reads two ways, `server.readings` (a frozen `Readings`, read on every request,
so a test may replace it) says which reading is served; see sp_api_emulator/README.md.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

from . import nfe_xml, operations
from .catalog import MARKETPLACE_ID
from .clock import ScaledClock, WallClock
from .dataset import Dataset
from .exports import (
    DEFAULT_MAX_INVOICES_PER_DOCUMENT,
    DEFAULT_PROCESSING_SECONDS,
    DEFAULT_QUEUE_SECONDS,
    XML_BODY,
    Document,
    Export,
    ExportRegistry,
    ExportTiming,
)
from .faults import (
    CUT,
    DEFAULT_EXPORT_ERROR,
    DOWNLOAD_OPERATION,
    DROP,
    GARBLE,
    LWA_OPERATION,
    TRUNCATE,
    Faults,
)
from .lwa import (
    DEFAULT_TOKEN_TTL,
    Authorizations,
    LwaCredentials,
    TokenState,
    TokenStore,
    exchange,
)
from .models import BRAZIL_TZ
from .operations import ApiError, error_body
from .presign import (
    DOWNLOAD_PREFIX,
    SECRET_PARAMETERS,
    XML,
    S3Error,
    UrlSigner,
    foreign_auth_error,
    s3_error,
)
from .rate_limits import API_PREFIX, DEFAULT_ARRIVAL_GRACE, USAGE_PLANS, RateLimiter
from .readings import Readings
from .stats import RequestRecord, Stats
from .zip_store import Entry, ZipStore

LWA_PATH = "/auth/o2/token"
CONSENT_PATH = "/apps/authorize/consent"  # Seller Central's, e.g. sellercentral.amazon.com.br
CONSENT_OPERATION = "sellerConsent"
CONTROL_PREFIX = "/_emulator"
JSON = "application/json"
LWA_JSON = "application/json;charset=UTF-8"
EXPIRED_DETAILS = "The access token you provided has expired."
UNKNOWN_OPERATION = "unknown"
CONTROL_OPERATION = "control"
ZIP = "application/zip"
CHUNK = 256 * 1024  # bytes per write when streaming a ZIP
SUCCESS_STATUS = {"createInvoicesExport": 202}  # every other operation answers 200
FOREIGN_AUTH_HEADERS = ("authorization", "x-amz-access-token")
RATE_LIMIT_HEADER = "x-amzn-RateLimit-Limit"
# bare_date_zone reading -> zone (Brazil has kept UTC-03:00 all year since 2019)
BARE_DATE_ZONES: dict[str, tzinfo] = {
    "UTC": UTC,
    "America/Sao_Paulo": timezone(timedelta(hours=-3), "America/Sao_Paulo"),
}


@dataclass(frozen=True)
class Request:
    """An HTTP request as the emulator sees it (header names lower-cased)."""

    method: str
    path: str
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """Return a header by case-insensitive name."""
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class FileBody:
    """A body streamed from a file: `length` bytes announced, the first `send` bytes written.

    `send < length` makes the server close the connection mid-body (a dropped download).
    """

    path: Path
    length: int
    send: int


@dataclass
class Response:
    """An HTTP response: a JSON body, raw bytes (S3 XML), or a file streamed from disk."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = JSON
    file: FileBody | None = None
    cut: bool = False  # send half the body, then drop the connection

    def encode(self) -> bytes:
        """Return the body as bytes: raw bytes as they are, anything else as UTF-8 JSON."""
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, ensure_ascii=False).encode()


@dataclass(frozen=True)
class Route:
    """An SP-API operation's method and path pattern."""

    operation: str
    method: str
    pattern: re.Pattern[str]


def _compile_routes() -> list[Route]:
    """Build SP-API routes from the usage-plan table ("{name}" = one path segment)."""
    routes = []
    for plan in USAGE_PLANS.values():
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", API_PREFIX + plan.path)
        routes.append(Route(plan.operation, plan.method, re.compile(f"^{regex}$")))
    return routes


ROUTES = _compile_routes()


# Plain HTTP on purpose: the emulator listens on loopback addresses only (require_loopback),
# the one kind of host the connector accepts http for, so no test has to trust a certificate.
SCHEME = "http"


def require_loopback(host: str) -> None:
    """Refuse to listen anywhere but loopback: the emulator has no real security."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the emulator listens only on loopback addresses, not {host!r}")


class EmulatorServer:
    """A local SP-API Invoices emulator; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        dataset: Dataset,
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        token_ttl: float = DEFAULT_TOKEN_TTL,
        credentials: LwaCredentials | None = None,
        rate_overrides: Mapping[str, float] | None = None,
        deny_role: bool = False,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        log_requests: bool = False,
        epoch: datetime | None = None,
        scaled_wall_clock: bool = False,
        max_invoices_per_document: int = DEFAULT_MAX_INVOICES_PER_DOCUMENT,
        export_processing_seconds: tuple[float, float] = DEFAULT_PROCESSING_SECONDS,
        export_queue_seconds: float = DEFAULT_QUEUE_SECONDS,
        reuse_identical_documents: bool = False,
        encoding_mix: bool = False,
        xml_files: Mapping[str, bytes] | None = None,
        entry_names: Mapping[str, str] | None = None,
        max_export_days: int | None = None,
        readings: Readings | None = None,
        arrival_grace: float = DEFAULT_ARRIVAL_GRACE,
    ) -> None:
        """Configure the emulator.

        time_scale: emulator seconds per real second (tokens, buckets, exports, URL expiry).
        token_ttl: access-token lifetime in emulator seconds.
        rate_overrides: operation -> rate in req/emulator-second (a higher usage plan).
        arrival_grace: real seconds a call may arrive before its token is whole, so the host's
            scheduling jitter, multiplied by time_scale, is not a 429 (see `rate_limits`).
        clock: real-seconds source (inject a ManualClock to drive time by hand).
        epoch: the emulator wall clock (UTC) at start; it dates export creation, export
            timestamps and document URLs (default: `now()` if given, else the real UTC time).
        scaled_wall_clock: run that wall clock at emulator speed instead of real speed (see
            `WallClock`); off by default so the dates agree with a client's own clock.
        now: "now" for getInvoices' default dateEnd (default: the emulator wall clock).
        max_invoices_per_document: most invoices one export document (ZIP) holds.
        export_processing_seconds: (low, high) emulator seconds an export spends PROCESSING;
            fixed per export, longer for more invoices.
        export_queue_seconds: emulator seconds an export stays REQUESTED.
        reuse_identical_documents: documents of the same invoices share one built ZIP (for
            benchmarks that read the same days again; leave off when invoices change).
        max_export_days: the longest date range createInvoicesExport accepts; a longer one is
            answered 400 InvalidInput (the model states no limit: default none).
        encoding_mix: render some NF-e files in ISO-8859-1 or with a UTF-8 BOM (fixed per
            invoice by `nfe_xml.encoding_for`); otherwise every file is plain UTF-8.
        xml_files: invoice id -> the bytes the export documents hold for that invoice, as they
            are, instead of its generated NF-e (real files from elsewhere; `serve_xml` picks
            the invoices). Kept as `self.xml_files`, read whenever a document is built.
        entry_names: invoice id -> the name of its ZIP entry instead of `<invoice id>.xml` (a
            hostile name such as `../x.xml` or `/etc/x.xml`, for a client's file handling).
            Kept as `self.entry_names`, read whenever a ZIP is built.
        readings: which reading of the model to serve where it contradicts itself (default
            `Readings()`, the behaviour before readings existed). Kept as `self.readings` and
            read on every request, so a test may replace it while the server runs.
        """
        require_loopback(host)
        self.dataset = dataset
        self.host = host
        self.port = port
        self.clock = ScaledClock(time_scale, clock)
        self.credentials = credentials or LwaCredentials()
        self.tokens = TokenStore(self.clock, token_ttl)
        self.authorizations = Authorizations(self.clock)
        self.limiter = RateLimiter(self.clock, rate_overrides, arrival_grace=arrival_grace)
        self.faults = Faults(USAGE_PLANS)
        self.faults.deny_role = deny_role
        self.stats = Stats()
        self.log_requests = log_requests
        start = epoch or (now() if now else datetime.now(UTC))
        self.wall = WallClock(self.clock, start, scaled=scaled_wall_clock)
        self._now = now or self.wall.now
        self.encoding_mix = encoding_mix
        self.xml_files: dict[str, bytes] = dict(xml_files or {})
        self.entry_names: dict[str, str] = dict(entry_names or {})
        self.max_export_days = max_export_days
        self.readings = readings if readings is not None else Readings()
        self.exports = ExportRegistry(
            self.wall,
            ExportTiming(export_queue_seconds, export_processing_seconds),
            max_invoices_per_document,
        )
        self.signer = UrlSigner(secrets.token_bytes(32), self.wall)
        self.zips = ZipStore(
            self._zip_entry, reuse_identical=reuse_identical_documents, name=self._entry_name
        )
        self._page_tokens = operations.PageTokens(secrets.token_bytes(32))
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None
        self._handlers: dict[str, Callable[[re.Match[str], Request], dict[str, Any]]] = {
            "getInvoicesAttributes": lambda m, r: operations.get_invoices_attributes(
                self.dataset, r.query
            ),
            "getInvoices": lambda m, r: operations.get_invoices(
                self.dataset,
                r.query,
                now=self._now(),
                tokens=self._page_tokens,
                pagination=self.readings.pagination,
                by=self.readings.invoice_filter_date,
            ),
            "getInvoice": lambda m, r: operations.get_invoice(
                self.dataset, unquote(m["invoiceId"]), r.query
            ),
            "createInvoicesExport": lambda m, r: self._create_export(r),
            "getInvoicesExports": lambda m, r: operations.get_invoices_exports(
                self.exports,
                r.query,
                now=self.wall.now(),
                tokens=self._page_tokens,
                forgotten=self.faults.is_forgotten,
                pagination=self.readings.pagination,
                statuses=self.readings.export_statuses,
            ),
            "getInvoicesExport": lambda m, r: self._prepare_documents(
                operations.get_invoices_export(
                    self.exports,
                    unquote(m["exportId"]),
                    forgotten=self.faults.is_forgotten,
                    statuses=self.readings.export_statuses,
                )
            ),
            "getInvoicesDocument": lambda m, r: operations.get_invoices_document(
                self.exports, unquote(m["invoicesDocumentId"]), issue_url=self._issue_url
            ),
        }

    # --- life cycle -------------------------------------------------------------------------

    @property
    def time_scale(self) -> float:
        """Return emulator seconds per real second."""
        return self.clock.time_scale

    @property
    def url(self) -> str:
        """Return the base URL: scheme, loopback host and port (SP-API endpoint override)."""
        if self._httpd is None:
            raise RuntimeError("the emulator is not started")
        return self._base_url()

    def _base_url(self) -> str:
        """Return the base URL whether or not the server is started (for links it hands out)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{SCHEME}://{host}:{self.port}"

    @property
    def lwa_url(self) -> str:
        """Return the LWA token URL (LWA endpoint override)."""
        return self.url + LWA_PATH

    def start(self) -> EmulatorServer:
        """Bind the port and serve on a daemon thread."""
        if self._httpd is not None:
            return self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._httpd = _HttpServer((self.host, self.port), self, family)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sp-api-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, release the port and delete the ZIP files built so far."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
            self._thread = None
        self.zips.close()

    def __enter__(self) -> EmulatorServer:
        """Start on entering a `with` block."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop on leaving a `with` block."""
        self.stop()

    # --- conveniences for tests ------------------------------------------------------------

    def issue_token(self) -> str:
        """Return a valid access token without going through LWA."""
        return self.tokens.issue()

    def expire_tokens(self) -> int:
        """Make every issued access token expired now; return how many were valid."""
        return self.tokens.expire_all()

    def set_rate(self, operation: str, rate: float | None) -> None:
        """Override an operation's rate in req/emulator-second (None restores the plan)."""
        self.limiter.set_rate(operation, rate)

    def reset(self) -> None:
        """Clear faults, statistics and rate-limit buckets (tokens stay valid)."""
        self.faults.reset()
        self.stats.reset()
        self.limiter.reset()

    def creation_time(self, invoice_id: str) -> datetime:
        """Return when an invoice was created (what invoice_filter_date="creation" filters on)."""
        return self.dataset.created_at(invoice_id)

    def set_readings(self, **changes: Any) -> Readings:
        """Change some readings while the server runs (values may be text); return them all."""
        self.readings = self.readings.with_changes(changes)
        return self.readings

    def serve_xml(self, files: Iterable[bytes]) -> list[str]:
        """Serve these files, one each, as the XML of the data set's first invoices in (date,
        id) order, byte for byte; return those invoice ids (the ZIP entries' names, less .xml).

        The invoices keep their getInvoices records; only the files of the export documents
        change (`xml_files`). ValueError when the data set holds fewer invoices than files.
        """
        contents = list(files)
        invoices = self.dataset.records()
        if len(contents) > len(invoices):
            raise ValueError(
                f"{len(contents)} files but only {len(invoices)} invoices to serve them as"
            )
        ids = [invoice.id for invoice in invoices[: len(contents)]]
        self.xml_files.update(zip(ids, contents, strict=True))
        return ids

    def export_requests(self) -> list[Export]:
        """Return every export created so far, oldest first (`query`: the body as sent)."""
        return self.exports.all()

    def connector_config(self, replication_start_date: str, **extra: Any) -> dict[str, Any]:
        """Return a source-sp-invoices config pointing at this emulator."""
        return {
            "region": "NA",
            "aws_environment": "PRODUCTION",
            "marketplace_id": MARKETPLACE_ID,
            "lwa_app_id": self.credentials.client_id,
            "lwa_client_secret": self.credentials.client_secret,
            "refresh_token": self.credentials.refresh_token,
            "replication_start_date": replication_start_date,
            "api_endpoint": self.url,
            "lwa_endpoint": self.lwa_url,
            **extra,
        }

    def control(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply switches given as JSON (the body of POST /_emulator/control); return the state.

        Keys (all optional, applied in this order): reset_faults (bool), deny_role (bool),
        latency ({operation: seconds | null}), fail_next ([{operation, status, count, code?,
        message?}] or one such object), rate_overrides ({operation: rate | null}),
        expire_tokens (bool), set_status ([{invoiceId, status, errorCode?, govResponse?}]),
        fail_exports ([{count?, message?, dateStart?}] or one such object),
        truncate_downloads / drop_downloads / expire_urls (count), forget_exports ([exportId]),
        cancel_exports ([{count?, dateStart?}] or one such object), odd_status ([{status,
        count?, dateStart?}] or one such object), readings ({name: value}: change readings).
        Operation names are those of the usage plans plus "lwaToken", "download" and "*".
        """
        known = {
            "reset_faults",
            "deny_role",
            "latency",
            "fail_next",
            "rate_overrides",
            "expire_tokens",
            "set_status",
            "fail_exports",
            "truncate_downloads",
            "drop_downloads",
            "expire_urls",
            "forget_exports",
            "cancel_exports",
            "odd_status",
            "readings",
        }
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown control key(s): {', '.join(unknown)}")
        if "readings" in changes:
            readings = changes["readings"]
            if not isinstance(readings, Mapping):
                raise ValueError("readings must be an object of reading names and values")
            self.readings = self.readings.with_changes(dict(readings))
        if changes.get("reset_faults"):
            self.faults.reset()
        if "deny_role" in changes:
            self.faults.deny_role = bool(changes["deny_role"])
        for operation, seconds in dict(changes.get("latency") or {}).items():
            self.faults.set_latency(operation, seconds)
        failures = changes.get("fail_next") or []
        for spec in [failures] if isinstance(failures, Mapping) else failures:
            self.faults.fail_next(
                spec["operation"],
                int(spec["status"]),
                int(spec.get("count", 1)),
                code=spec.get("code"),
                message=spec.get("message"),
                details=spec.get("details", ""),
            )
        for operation, rate in dict(changes.get("rate_overrides") or {}).items():
            self.set_rate(operation, rate)
        if changes.get("expire_tokens"):
            self.expire_tokens()
        for spec in changes.get("set_status") or []:
            self.dataset.set_status(
                spec["invoiceId"],
                spec["status"],
                error_code=spec.get("errorCode", ""),
                gov_response=spec.get("govResponse", ""),
            )
        plans = changes.get("fail_exports") or []
        for spec in [plans] if isinstance(plans, Mapping) else plans:
            self.faults.fail_exports(
                int(spec.get("count", 1)),
                message=spec.get("message") or DEFAULT_EXPORT_ERROR,
                date_start=spec.get("dateStart"),
            )
        if changes.get("truncate_downloads"):
            self.faults.truncate_downloads(int(changes["truncate_downloads"]))
        if changes.get("drop_downloads"):
            self.faults.drop_downloads(int(changes["drop_downloads"]))
        if changes.get("expire_urls"):
            self.faults.expire_urls(int(changes["expire_urls"]))
        plans = changes.get("cancel_exports") or []
        for spec in [plans] if isinstance(plans, Mapping) else plans:
            self.faults.cancel_exports(int(spec.get("count", 1)), spec.get("dateStart"))
        plans = changes.get("odd_status") or []
        for spec in [plans] if isinstance(plans, Mapping) else plans:
            self.faults.odd_status(spec["status"], int(spec.get("count", 1)), spec.get("dateStart"))
        forgotten = changes.get("forget_exports") or []
        if isinstance(forgotten, str) or not all(isinstance(i, str) for i in forgotten):
            raise ValueError("forget_exports must be a list of export ids")
        self.faults.forget_exports(forgotten)
        return self.state()

    def state(self) -> dict[str, Any]:
        """Return the fault switches, rate overrides and readings as JSON."""
        return {
            **self.faults.snapshot(),
            "rate_overrides": self.limiter.overrides,
            "readings": self.readings.to_json(),
        }

    def info(self) -> dict[str, Any]:
        """Return what a subprocess client needs to rebuild the truth: seed, range, scale."""
        return {
            "marketplaceId": MARKETPLACE_ID,
            "seed": self.dataset.seed,
            "start": self.dataset.start.isoformat(),
            "days": self.dataset.days,
            "invoices": len(self.dataset),
            "timeScale": self.time_scale,
            "tokenTtl": self.tokens.ttl,
            "expiresIn": self.tokens.expires_in,
            "url": self.url if self._httpd else None,
            "wallClock": self.wall.now().isoformat(),
            "scaledWallClock": self.wall.scaled,
            "maxInvoicesPerDocument": self.exports.max_invoices_per_document,
            "exportQueueSeconds": self.exports.timing.queue_seconds,
            "exportProcessingSeconds": list(self.exports.timing.processing_seconds),
            "documentUrlTtl": self.signer.ttl,
            "encodingMix": self.encoding_mix,
            "xmlFiles": len(self.xml_files),
            "entryNames": len(self.entry_names),
            "maxExportDays": self.max_export_days,
            "exports": len(self.exports.all()),
            "readings": self.readings.to_json(),
        }

    # --- request handling -------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Answer one request (no sockets involved).

        Every answer gets x-amzn-RequestId, except downloads: S3 sends x-amz-request-id.
        """
        operation = UNKNOWN_OPERATION
        try:
            operation, response = self._dispatch(request)
        except Exception:  # a bug in the emulator must show up as a 500, not a hang
            traceback.print_exc(file=sys.stderr)
            response = Response(
                500, error_body("InternalFailure", "The emulator failed; see its stderr.")
            )
        if operation != DOWNLOAD_OPERATION:
            response.headers["x-amzn-RequestId"] = str(uuid.uuid4())
        if operation != CONTROL_OPERATION:
            query = {k: v for k, v in request.query.items() if k not in SECRET_PARAMETERS}
            token = self.tokens.serial(request.header("x-amz-access-token"))
            self.stats.record(
                RequestRecord(
                    operation, request.method, request.path, query, response.status, token
                )
            )
        return response

    def _dispatch(self, request: Request) -> tuple[str, Response]:
        """Pick the route and answer it."""
        if request.path.startswith(CONTROL_PREFIX + "/"):
            return CONTROL_OPERATION, self._control(request)
        if request.path == LWA_PATH and request.method == "POST":
            return LWA_OPERATION, self._lwa(request)
        if request.path == CONSENT_PATH and request.method == "GET":
            return CONSENT_OPERATION, self._consent(request)
        if request.path.startswith(DOWNLOAD_PREFIX) and request.method == "GET":
            return DOWNLOAD_OPERATION, self._download(request)
        for route in ROUTES:
            match = route.pattern.match(request.path)
            if match and route.method == request.method:
                return route.operation, self._sp_api(route.operation, match, request)
        message = f"No operation at {request.method} {request.path}."
        return UNKNOWN_OPERATION, Response(404, error_body("NotFound", message))

    def _sp_api(self, operation: str, match: re.Match[str], request: Request) -> Response:
        """Answer an SP-API operation after the gateway checks."""
        headers = {}
        if self.readings.rate_limit_header:
            headers[RATE_LIMIT_HEADER] = self.limiter.header(operation)

        def fail(status: int, code: str, message: str, details: str = "") -> Response:
            return Response(status, error_body(code, message, details), headers)

        if request.header("authorization") is not None:
            return fail(
                400,
                "InvalidInput",
                "SP-API requests must not carry an Authorization header; send the LWA access "
                "token in x-amz-access-token.",
            )
        token_state = self.tokens.state(request.header("x-amz-access-token"))
        if token_state is not TokenState.VALID:
            details = EXPIRED_DETAILS if token_state is TokenState.EXPIRED else ""
            return fail(403, "Unauthorized", "Access to requested resource is denied.", details)
        if self.faults.deny_role:
            return fail(403, "Unauthorized", "Access to requested resource is denied.")
        if not self.limiter.acquire(operation):
            return fail(429, "QuotaExceeded", "You exceeded your quota for the requested resource.")
        self._wait(operation)
        failure = self.faults.take_failure(operation)
        if failure is not None:
            return fail(failure.status, failure.code, failure.message, failure.details)
        handler = self._handlers.get(operation)
        if handler is None:
            return fail(404, "NotFound", f"{operation} is not served by the emulator yet.")
        try:
            response = Response(
                SUCCESS_STATUS.get(operation, 200), handler(match, request), headers
            )
        except ApiError as error:
            return fail(error.status, error.code, error.message, error.details)
        fault = self.faults.take_body_fault(operation)
        if fault == GARBLE:  # what a proxy or load balancer in the way sends
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            return Response(200, page, headers, content_type="text/html")
        response.cut = fault == CUT
        return response

    @staticmethod
    def _json_body(request: Request) -> bytes:
        """Return a JSON request body; refuse another declared media type (415)."""
        media_type = (request.header("content-type") or JSON).split(";")[0].strip().lower()
        if media_type != JSON:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"The request payload is in an unsupported format: {media_type}.",
            )
        return request.body

    # --- export documents: URLs, ZIPs, downloads ---------------------------------------------

    def _create_export(self, request: Request) -> dict[str, Any]:
        """Answer createInvoicesExport under the readings in force."""
        readings = self.readings
        zone = BARE_DATE_ZONES[readings.bare_date_zone]
        now = self.wall.now()
        return operations.create_invoices_export(
            self.dataset,
            self.exports,
            self._json_body(request),
            today=now.astimezone(zone).date(),
            planned_fault=self.faults.take_export_fault,
            max_days=self.max_export_days,
            export_dates=readings.export_dates,
            zone=zone,
            now=now,
            by=readings.invoice_filter_date,
            document_body=readings.document_body,
        )

    def _issue_url(self, document_id: str) -> str:
        """Return a fresh pre-signed URL and start building the ZIP it points to."""
        document = self.exports.document(document_id)
        if document.body != XML_BODY:
            self.zips.prepare(document)
        expired = self.faults.take("expire_urls")
        return self.signer.issue(
            self._base_url(), document_id, expired=expired, suffix=document.suffix
        )

    def _prepare_documents(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start building the ZIPs of an export seen DONE, so large ones are ready in time."""
        for document_id in body["export"]["invoicesDocumentIds"]:
            document = self.exports.document(document_id)
            if document.body != XML_BODY:
                self.zips.prepare(document)
        return body

    def _zip_entry(self, invoice_id: str) -> Entry:
        """Render one ZIP entry: the invoice's NF-e file (or the file given for it in
        `xml_files`), stamped with its Brasília issue time."""
        data = self.xml_files.get(invoice_id)
        if data is None:
            encoding = nfe_xml.encoding_for(invoice_id) if self.encoding_mix else nfe_xml.UTF8
            data = self.dataset.nfe_xml(invoice_id, encoding)
        issued = self.dataset.record(invoice_id).nfe.issued_at.astimezone(BRAZIL_TZ)
        return data, issued

    def _entry_name(self, invoice_id: str) -> str:
        """The name of an invoice's ZIP entry: `<invoice id>.xml`, or the one given for it in
        `entry_names`."""
        return self.entry_names.get(invoice_id, f"{invoice_id}.xml")

    def _download(self, request: Request) -> Response:
        """Answer GET /_s3/documents/<id>.zip?<pre-signed query> the way S3 would (<id>.xml
        for a document of the document_body="xml" reading: the invoice's NF-e XML)."""
        request_id = uuid.uuid4().hex[:16].upper()

        def s3_fail(error: S3Error) -> Response:
            headers = {"x-amz-request-id": request_id}
            return Response(error.status, error.body(request_id), headers, XML)

        for header in FOREIGN_AUTH_HEADERS:
            if request.header(header) is not None:
                return s3_fail(foreign_auth_error(header))
        name = unquote(request.path[len(DOWNLOAD_PREFIX) :])
        document_id, dot, suffix = name.rpartition(".")
        if not dot:
            document_id, suffix = name, ""
        error = self.signer.check(document_id, request.query)
        if error is not None:
            return s3_fail(error)
        try:
            document = self.exports.document(document_id)
        except KeyError:
            return s3_fail(s3_error(404))
        if f".{suffix}" != document.suffix:
            return s3_fail(s3_error(404))
        self._wait(DOWNLOAD_OPERATION)
        failure = self.faults.take_failure(DOWNLOAD_OPERATION)
        if failure is not None:
            return s3_fail(s3_error(failure.status, failure.message))
        if document.body == XML_BODY:
            return self._xml_document(document, request_id)
        path = self.zips.path(document)
        size = path.stat().st_size
        fault = self.faults.take_download_fault()
        length = size if fault in (None, DROP) else size // 2  # TRUNCATE announces half
        send = size if fault is None else size // 2
        headers = {
            "x-amz-request-id": request_id,
            "ETag": f'"{document_id.replace("-", "")[:32]}"',
            "Content-Disposition": f'attachment; filename="{document_id}.zip"',
        }
        return Response(200, b"", headers, ZIP, FileBody(path, length, send))

    def _xml_document(self, document: Document, request_id: str) -> Response:
        """Serve an "xml" document: its one invoice's NF-e file, as the ZIP entry would hold it.

        A truncated download announces and sends half the bytes; a dropped one announces them
        all and closes the connection after half.
        """
        data, _ = self._zip_entry(document.invoice_ids[0])
        fault = self.faults.take_download_fault()
        body = data[: len(data) // 2] if fault == TRUNCATE else data
        headers = {
            "x-amz-request-id": request_id,
            "ETag": f'"{document.document_id.replace("-", "")[:32]}"',
            "Content-Disposition": f'attachment; filename="{document.document_id}.xml"',
        }
        return Response(200, body, headers, XML, cut=fault == DROP)

    def _wait(self, operation: str) -> None:
        """Sleep the injected latency of an operation (real seconds)."""
        delay = self.faults.delay(operation)
        if delay > 0:
            time.sleep(delay)

    def _lwa(self, request: Request) -> Response:
        """Answer POST /auth/o2/token (form-encoded or JSON body)."""
        self._wait(LWA_OPERATION)
        failure = self.faults.take_failure(LWA_OPERATION)
        if failure is not None:
            error = "server_error" if failure.status >= 500 else "invalid_request"
            body = {"error": error, "error_description": failure.message}
            return Response(failure.status, body, content_type=LWA_JSON)
        text = request.body.decode("utf-8", errors="replace")
        form: dict[str, str]
        if (request.header("content-type") or "").startswith(JSON):
            try:
                parsed = json.loads(text or "{}")
            except json.JSONDecodeError:
                parsed = None
            if not isinstance(parsed, dict):
                body = {"error": "invalid_request", "error_description": "Malformed JSON body"}
                return Response(400, body, content_type=LWA_JSON)
            form = {str(k): str(v) for k, v in parsed.items()}
        else:
            form = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
        status, body = exchange(form, self.credentials, self.tokens, self.authorizations)
        return Response(status, body, content_type=LWA_JSON)

    def _consent(self, request: Request) -> Response:
        """Answer Seller Central's consent page as a seller who clicks Confirm: a redirect to
        `redirect_uri` with `state`, `selling_partner_id` and a fresh `spapi_oauth_code`.

        Amazon shows the seller an error page when the application id is unknown; here a 400
        says which parameter is wrong. `version=beta` (a draft application) is accepted."""
        params = {name: values[0] for name, values in request.query.items()}
        for name in ("application_id", "state", "redirect_uri"):
            if not params.get(name):
                return Response(400, {"error": f"the consent URL has no {name}"})
        if params["application_id"] != self.credentials.application_id:
            return Response(400, {"error": "unknown application_id: no such SP-API application"})
        redirect = urlsplit(params["redirect_uri"])
        if redirect.scheme not in ("http", "https") or not redirect.netloc:
            return Response(400, {"error": "redirect_uri is not an http(s) URL"})
        answer = urlencode(
            {
                "state": params["state"],
                "selling_partner_id": self.credentials.selling_partner_id,
                "spapi_oauth_code": self.authorizations.consent(params["redirect_uri"]),
            }
        )
        query = f"{redirect.query}&{answer}" if redirect.query else answer
        location = urlunsplit(redirect._replace(query=query))
        return Response(302, b"", headers={"Location": location}, content_type="text/plain")

    @property
    def consent_url(self) -> str:
        """Seller Central's consent page, as this emulator serves it."""
        return self.url + CONSENT_PATH

    def _control(self, request: Request) -> Response:
        """Answer the /_emulator/* routes that tests use to steer and inspect the emulator."""
        action = (request.method, request.path[len(CONTROL_PREFIX) :])
        if action == ("GET", "/health"):
            return Response(200, {"status": "ok"})
        if action == ("GET", "/info"):
            return Response(200, self.info())
        if action == ("GET", "/stats"):
            return Response(200, self.stats.snapshot())
        if action == ("POST", "/reset-stats"):
            self.stats.reset()
            return Response(200, self.stats.snapshot())
        if action == ("GET", "/requests"):
            operation = (request.query.get("operation") or [None])[0]
            return Response(200, {"requests": self.stats.log_snapshot(operation)})
        if action == ("GET", "/control"):
            return Response(200, self.state())
        if action == ("POST", "/control"):
            try:
                changes = json.loads(request.body.decode("utf-8") or "{}")
                if not isinstance(changes, dict):
                    raise ValueError("the control body must be a JSON object")
                return Response(200, self.control(changes))
            except (ValueError, KeyError, TypeError) as error:
                return Response(400, error_body("InvalidInput", f"Bad control request: {error}"))
        return Response(404, error_body("NotFound", f"No control route {action[0]} {action[1]}."))


class _RequestHandler(BaseHTTPRequestHandler):
    """Adapts http.server to `EmulatorServer.handle` (HTTP/1.1 keep-alive)."""

    protocol_version = "HTTP/1.1"
    server_version = "SPAPIEmulator/1.0"
    timeout = 30  # seconds an idle keep-alive connection is kept
    server: _HttpServer

    def setup(self) -> None:
        """Disable Nagle's algorithm on the connection.

        Headers and body go out as separate writes; with Nagle, a delayed ACK would add tens of
        milliseconds to every answer.
        """
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        """Read the request, let the emulator answer, write the response."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "Bad Content-Length")
            return
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        response = self.server.emulator.handle(request)
        file = response.file
        payload = response.encode() if file is None else b""
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload) if file is None else file.length))
            self.end_headers()
            if file is None and response.cut:
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif file is None:
                self.wfile.write(payload)
            else:
                self._stream(file)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _stream(self, file: FileBody) -> None:
        """Write the first `file.send` bytes of a file in chunks; drop the connection if short."""
        left = file.send
        with file.path.open("rb") as source:
            while left > 0:
                chunk = source.read(min(CHUNK, left))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        if file.send < file.length:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, fmt: str, *args: Any) -> None:
        """Log requests only when asked (tests stay quiet), with the signatures and tokens of
        pre-signed download URLs masked: a log is shared more easily than a URL."""
        if self.server.emulator.log_requests:
            super().log_message(fmt, *(_SIGNED_PART.sub(r"\1=****", str(a)) for a in args))


_SIGNED_PART = re.compile(r"(X-Amz-(?:Signature|Security-Token|Credential))=[^&\s\"]+", re.I)


class _HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its emulator."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], emulator: EmulatorServer, family: socket.AddressFamily
    ) -> None:
        """Bind `address` with the given address family."""
        self.address_family = family
        self.emulator = emulator
        super().__init__(address, _RequestHandler)
