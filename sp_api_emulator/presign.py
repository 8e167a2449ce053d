"""Pre-signed S3-style download URLs: issued by getInvoicesDocument, valid 30 emulator seconds.

The URL looks like an S3 SigV4 query-signed URL; the signature is an HMAC of the document id and
the signed parameters under the server's secret. Each issue gets a fresh session token, so every
call returns a new URL, and its exact expiry (emulator seconds) is remembered, so a URL lives
exactly `ttl` emulator seconds however X-Amz-Date rounds. Errors are S3's XML error bodies.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape

from .clock import WallClock

DOWNLOAD_PREFIX = "/_s3/documents/"
URL_TTL = 30.0  # emulator seconds, as Amazon documents for invoicesDocumentUrl
ALGORITHM = "AWS4-HMAC-SHA256"
SIGNED = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires")
SESSION = "X-Amz-Security-Token"
SIGNATURE = "X-Amz-Signature"
REQUIRED = (*SIGNED, "X-Amz-SignedHeaders", SIGNATURE)
# Left out of the request log: a URL's signature and session token, and any LWA secret or
# code a client might put in a query string.
SECRET_PARAMETERS = frozenset(
    {SIGNATURE, SESSION, "client_secret", "refresh_token", "code", "spapi_oauth_code"}
)
XML = "application/xml"


@dataclass(frozen=True)
class S3Error:
    """An S3 error answer: HTTP status, Code, Message and extra elements."""

    status: int
    code: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)

    def body(self, request_id: str) -> bytes:
        """Return the XML body S3 sends."""
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in self.extra.items())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.code}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id.lower()}=</HostId></Error>"
        ).encode()


# S3 error (code, message) by HTTP status, for injected download failures.
S3_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidRequest", "Invalid Request"),
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}


def s3_error(status: int, message: str | None = None) -> S3Error:
    """Return the S3 error matching an HTTP status."""
    code, default = S3_ERRORS.get(status, ("InternalError", "Error."))
    return S3Error(status, code, message or default)


def foreign_auth_error(header: str) -> S3Error:
    """Return S3's answer to a query-signed request that also carries other credentials."""
    return S3Error(
        400,
        "InvalidArgument",
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature "
        "query string parameter or the Authorization header should be specified",
        {"ArgumentName": header},
    )


class UrlSigner:
    """Issues and checks document URLs (thread-safe)."""

    def __init__(self, secret: bytes, wall: WallClock, ttl: float = URL_TTL) -> None:
        """Sign with `secret`; URLs live `ttl` emulator seconds on `wall`'s clock."""
        self._secret = secret
        self.wall = wall
        self.ttl = ttl
        self._expiry: dict[str, float] = {}  # signature -> emulator time it expires
        self._issued: list[str] = []  # every signature and session token handed out
        self._urls: list[str] = []  # every URL handed out, query string included
        self._lock = threading.Lock()

    def _sign(self, document_id: str, params: Mapping[str, str]) -> str:
        """Return the hex HMAC over the document id, signed parameters and session token."""
        text = "\n".join([document_id, *(params[name] for name in SIGNED), params[SESSION]])
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def issue(
        self, base_url: str, document_id: str, *, expired: bool = False, suffix: str = ".zip"
    ) -> str:
        """Return a fresh URL for a document; `expired` issues it already too old.

        `suffix` ends the path: ".zip", or ".xml" for a document of the document_body="xml"
        reading (the model's example URL ends in `<documentId>.xml`).
        """
        now = self.wall.clock()
        issued = now - (self.ttl + 1) if expired else now
        moment = self.wall.at(issued)
        params = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"ASIAEMULATOR/{moment:%Y%m%d}/us-east-1/s3/aws4_request",
            "X-Amz-Date": f"{moment:%Y%m%dT%H%M%SZ}",
            "X-Amz-Expires": str(int(self.ttl)),
            SESSION: secrets.token_urlsafe(24),
        }
        params["X-Amz-SignedHeaders"] = "host"
        signature = self._sign(document_id, params)
        params[SIGNATURE] = signature
        path = DOWNLOAD_PREFIX + quote(document_id) + suffix
        url = f"{base_url}{path}?{urlencode(params)}"
        with self._lock:
            self._expiry = {s: t for s, t in self._expiry.items() if t > now - 3600}
            self._expiry[signature] = issued + self.ttl
            self._issued += [signature, params[SESSION]]
            self._urls.append(url)
        return url

    def issued(self) -> list[str]:
        """Every signature and session token issued so far: credentials a client must never
        print (tests scan its output for them)."""
        with self._lock:
            return list(self._issued)

    def issued_urls(self) -> list[str]:
        """Every URL issued so far, as handed out: its query string is a credential too."""
        with self._lock:
            return list(self._urls)

    def check(self, document_id: str, query: Mapping[str, list[str]]) -> S3Error | None:
        """Verify a download's query string; return the S3 error to answer, or None if valid."""
        params = {name: values[0] for name, values in query.items() if values}
        if not any(name in params for name in REQUIRED):
            return s3_error(403)
        if any(name not in params for name in (*REQUIRED, SESSION)):
            return S3Error(
                400,
                "AuthorizationQueryParametersError",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                "X-Amz-Expires parameters.",
            )
        signature = params[SIGNATURE]
        if not hmac.compare_digest(signature, self._sign(document_id, params)):
            return S3Error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
            )
        now = self.wall.clock()
        with self._lock:
            expiry = self._expiry.get(signature, float("-inf"))
        if now > expiry:
            expired_at = self.wall.at(expiry) if expiry > float("-inf") else self.wall.at(now)
            return S3Error(
                403,
                "AccessDenied",
                "Request has expired",
                {
                    "X-Amz-Expires": params["X-Amz-Expires"],
                    "Expires": f"{expired_at:%Y-%m-%dT%H:%M:%SZ}",
                    "ServerTime": f"{self.wall.at(now):%Y-%m-%dT%H:%M:%SZ}",
                },
            )
        return None
