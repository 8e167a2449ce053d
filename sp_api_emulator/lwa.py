"""Login with Amazon: the refresh-token grant and the access tokens it issues.

Answers mirror api.amazon.com/auth/o2/token: 401 invalid_client for a wrong app id or secret,
400 invalid_grant for a wrong refresh token. Access tokens live `ttl` emulator seconds;
`expires_in` is reported in real seconds so a client that trusts it works on a scaled clock.
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
DEFAULT_TOKEN_TTL = 3600.0


@dataclass(frozen=True)
class LwaCredentials:
    """The one LWA app and refresh token the emulator accepts."""

    client_id: str = TEST_CLIENT_ID
    client_secret: str = TEST_CLIENT_SECRET
    refresh_token: str = TEST_REFRESH_TOKEN


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
    form: Mapping[str, str], credentials: LwaCredentials, store: TokenStore
) -> tuple[int, dict[str, Any]]:
    """Answer a token request: (HTTP status, JSON body)."""
    grant_type = form.get("grant_type", "")
    if not grant_type:
        return _oauth_error(
            400, "invalid_request", "The request is missing a required parameter : grant_type"
        )
    if grant_type != "refresh_token":
        return _oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server",
        )
    client_ok = _same(form.get("client_id", ""), credentials.client_id)
    if not (client_ok and _same(form.get("client_secret", ""), credentials.client_secret)):
        return _oauth_error(401, "invalid_client", "Client authentication failed")
    refresh_token = form.get("refresh_token", "")
    if not refresh_token:
        return _oauth_error(
            400, "invalid_request", "The request is missing a required parameter : refresh_token"
        )
    if not _same(refresh_token, credentials.refresh_token):
        return _oauth_error(
            400,
            "invalid_grant",
            "The request has an invalid grant parameter : refresh_token",
        )
    return 200, {
        "access_token": store.issue(),
        "refresh_token": credentials.refresh_token,
        "token_type": "bearer",
        "expires_in": store.expires_in,
    }
