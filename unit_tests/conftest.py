"""Fixtures of the unit tests: a valid config with fake credentials and the default endpoints."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import backoff._sync
import pytest
from airbyte_cdk.sources.streams.http import rate_limiting

from source_sp_invoices.http import auth

LWA_URL = "https://api.amazon.com/auth/o2/token"
API_URL = "https://sellingpartnerapi-na.amazon.com/tax/invoices/2024-06-19"


def make_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "lwa_app_id": "amzn1.application-oa2-client.unit-test-client",
        "lwa_client_secret": "unit-test-client-secret-0123",
        "refresh_token": "Atzr|unit-test-refresh-token-0123",
        "replication_start_date": "2024-01-01T00:00:00Z",
        "replication_end_date": "2024-01-15T00:00:00Z",
    }
    config.update(overrides)
    return {k: v for k, v in config.items() if v is not None}


@pytest.fixture
def config() -> dict[str, Any]:
    return make_config()


@pytest.fixture
def lwa(requests_mock):
    """A Login with Amazon endpoint that grants one-hour tokens."""
    return requests_mock.post(
        LWA_URL,
        json={
            "access_token": "Atza|unit-test-access-token",
            "token_type": "bearer",
            "expires_in": 3600,
        },
    )


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch):
    """Retries and backoffs return at once; only the modules that wait between attempts are
    touched, so the call-rate budget still sees the real clock."""
    instant = SimpleNamespace(sleep=lambda seconds: None, monotonic=time.monotonic, time=time.time)
    for module in (backoff._sync, rate_limiting, auth):
        monkeypatch.setattr(module, "time", instant)
