"""Login with Amazon: the refresh-token and authorization-code grants and the tokens they issue.

Answers mirror api.amazon.com/auth/o2/token: 401 invalid_client for a wrong app id or secret,
400 invalid_grant for a wrong refresh token or authorization code. Access tokens live `ttl`
emulator seconds; `expires_in` is reported in real seconds so a client that trusts it works on a
scaled clock. `Authorizations` plays Seller Central's consent page: a seller who authorizes the
application gets an `spapi_oauth_code` (single use, five minutes), which the authorization-code
grant exchanges for a refresh token of its own.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .clock import ScaledClock

TEST_CLIENT_ID = "amzn1.application-oa2-client.emulator"
TEST_CLIENT_SECRET = "emulator-client-secret"
TEST_REFRESH_TOKEN = "Atzr|emulator-refresh-token"
TEST_APPLICATION_ID = "amzn1.sp.solution.emulator"
TEST_SELLING_PARTNER_ID = "A2EMULATORSELLER"
DEFAULT_TOKEN_TTL = 3600.0
CODE_TTL = 300.0  # Amazon: "The spapi_oauth_code value expires after five minutes."


@dataclass(frozen=True)
class LwaCredentials:
    """The one LWA app (and its SP-API application id) and refresh token the emulator accepts."""

    client_id: str = TEST_CLIENT_ID
    client_secret: str = TEST_CLIENT_SECRET
    refresh_token: str = TEST_REFRESH_TOKEN
    application_id: str = TEST_APPLICATION_ID
    selling_partner_id: str = TEST_SELLING_PARTNER_ID


class Authorizations:
    """Seller consents: authorization codes (single use, `ttl` emulator seconds, bound to the
    redirect URI they were issued for) and the refresh tokens they were exchanged for."""

    def __init__(self, clock: ScaledClock, ttl: float = CODE_TTL) -> None:
        self.clock = clock
        self.ttl = ttl
        self._codes: dict[str, tuple[str, float]] = {}  # unused code -> (redirect URI, expiry)
        self._issued: list[str] = []  # every code and refresh token, used or not
        self._refresh_tokens: list[str] = []
        self._lock = threading.Lock()

    def consent(self, redirect_uri: str) -> str:
        """The seller authorized the application: a new code for this redirect URI."""
        code = "ANemulator" + secrets.token_urlsafe(24)
        with self._lock:
            now = self.clock()
            for old in [c for c, (_, expiry) in self._codes.items() if expiry <= now]:
                del self._codes[old]  # expired: forgotten
            self._codes[code] = (redirect_uri, now + self.ttl)
            self._issued.append(code)
        return code

    def redeem(self, code: str, redirect_uri: str | None) -> str | None:
        """A refresh token for a valid code (which is used up), None for any other code."""
        with self._lock:
            issued = self._codes.pop(code, None)
            if issued is None or self.clock() >= issued[1]:
                return None
            if redirect_uri is not None and redirect_uri != issued[0]:
                return None
            token = "Atzr|" + secrets.token_urlsafe(48)
            self._refresh_tokens.append(token)
            self._issued.append(token)
            return token

    def knows(self, refresh_token: str) -> bool:
        """Whether a refresh token was issued by the authorization-code grant."""
        with self._lock:
            return any(_same(refresh_token, token) for token in self._refresh_tokens)

    def issued(self) -> list[str]:
        """Every code and refresh token issued so far (tests look for them in outputs)."""
        with self._lock:
            return list(self._issued)


class TokenState(Enum):
    """What the emulator knows about an access token."""

    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


class TokenStore:
    """Issued access tokens and their expiry times in emulator seconds (thread-safe)."""

    def __init__(self, clock: ScaledClock, ttl: float = DEFAULT_TOKEN_TTL) -> None:
        """Issue tokens that live `ttl` emulator seconds."""
        if ttl <= 0:
            raise ValueError("token ttl must be positive")
        self.clock = clock
        self.ttl = ttl
        self._expiry: dict[str, float] = {}  # in issue order
        self._serials: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def expires_in(self) -> int:
        """Return a token's lifetime in real seconds, rounded up, as `expires_in` reports it."""
        return math.ceil(self.clock.to_real(self.ttl))

    def issue(self) -> str:
        """Create a new access token; earlier ones stay valid until they expire."""
        token = "Atza|" + secrets.token_urlsafe(48)
        with self._lock:
            self._expiry[token] = self.clock() + self.ttl
            self._serials[token] = len(self._serials) + 1
        return token

    def serial(self, token: str | None) -> int | None:
        """Return a token's issue number (1 for the first issued), None for one never issued.

        Not a secret: the request log keeps it, so a test can tell apart the calls of two
        clients (two connector processes each log in for their own token).
        """
        if not token:
            return None
        with self._lock:
            return self._serials.get(token)

    def issued(self) -> list[str]:
        """Every access token issued so far (tests look for them in a connector's output)."""
        with self._lock:
            return list(self._expiry)

    def state(self, token: str | None) -> TokenState:
        """Tell whether a token is valid, expired, or was never issued."""
        if not token:
            return TokenState.UNKNOWN
        with self._lock:
            expiry = self._expiry.get(token)
        if expiry is None:
            return TokenState.UNKNOWN
        return TokenState.VALID if self.clock() < expiry else TokenState.EXPIRED

    def expire_all(self) -> int:
        """Make every issued token expired now; return how many were still valid."""
        with self._lock:
            now = self.clock()
            alive = [token for token, expiry in self._expiry.items() if expiry > now]
            for token in alive:
                self._expiry[token] = now
            return len(alive)


def _same(given: str, expected: str) -> bool:
    """Compare secrets in constant time (bytes, so any text is accepted)."""
    return secrets.compare_digest(given.encode(), expected.encode())


def _oauth_error(status: int, error: str, description: str) -> tuple[int, dict[str, Any]]:
    """Build an LWA error answer."""
    return status, {"error": error, "error_description": description}


def exchange(
    form: Mapping[str, str],
    credentials: LwaCredentials,
    store: TokenStore,
    authorizations: Authorizations | None = None,
) -> tuple[int, dict[str, Any]]:
    """Answer a token request: (HTTP status, JSON body)."""
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return _oauth_error(
            400, "invalid_request", "The request is missing a required parameter : grant_type"
        )
    if grant_type not in ("refresh_token", "authorization_code"):
        return _oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server",
        )
    client_ok = _same(form.get("client_id", ""), credentials.client_id)
    if not (client_ok and _same(form.get("client_secret", ""), credentials.client_secret)):
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    if grant_type == "authorization_code":
        return _authorization_code(form, store, authorizations)
    refresh_token = form.get("refresh_token", "")
    if not refresh_token:
        return _oauth_error(
            400, "invalid_request", "The request is missing a required parameter : refresh_token"
        )
    known = authorizations is not None and authorizations.knows(refresh_token)
    if not (known or _same(refresh_token, credentials.refresh_token)):
        return _oauth_error(
            400,
            "invalid_grant",
            "The request has an invalid grant parameter : refresh_token",
        )
    return 200, {
        "access_token": store.issue(),
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": store.expires_in,
    }


def _authorization_code(
    form: Mapping[str, str], store: TokenStore, authorizations: Authorizations | None
) -> tuple[int, dict[str, Any]]:
    """The authorization-code grant: the seller's `spapi_oauth_code` for a refresh token."""
    code = form.get("code", "")
    if not code:
        return _oauth_error(
            400, "invalid_request", "The request is missing a required parameter : code"
        )
    refresh_token = (
        authorizations.redeem(code, form.get("redirect_uri")) if authorizations else None
    )
    if refresh_token is None:  # unknown, used, expired, or issued for another redirect URI
        return _oauth_error(
            400, "invalid_grant", "The request has an invalid grant parameter : code"
        )
    return 200, {
        "access_token": store.issue(),
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": store.expires_in,
    }
