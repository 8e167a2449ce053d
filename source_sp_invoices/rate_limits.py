"""Which operation a request is, the rate Amazon applies to it, and how long a 429 waits."""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

import requests
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy

from source_sp_invoices import settings

logger = logging.getLogger("airbyte")

_OPERATION_PATTERNS: list[tuple[str, re.Pattern[str], str]] = [
    (
        plan.method,
        re.compile(
            "/" + settings.API_VERSION_PATH + "/" + re.sub(r"\{\w+\}", "[^/]+", plan.path) + "$"
        ),
        name,
    )
    for name, plan in settings.USAGE_PLANS.items()
]


def operation_of(method: str, url: str) -> str | None:
    """The SP-API operation a request calls, or None for a URL outside the Invoices API."""
    path = urlsplit(url).path
    for plan_method, pattern, name in _OPERATION_PATTERNS:
        if plan_method == method.upper() and pattern.search(path):
            return name
    return None


class RateLimits:
    """The rate of each operation: the usage plan until a response says what really applies."""

    def __init__(self) -> None:
        self._rates = {name: plan.rate for name, plan in settings.USAGE_PLANS.items()}
        self._lock = threading.Lock()

    def rate(self, operation: str) -> float:
        return self._rates[operation]

    def observe(self, response: requests.Response) -> None:
        """Learn the applied rate from x-amzn-RateLimit-Limit, if the response carries it."""
        header = response.headers.get("x-amzn-RateLimit-Limit")
        request = response.request
        if not header or request is None or not request.method or not request.url:
            return
        operation = operation_of(request.method, request.url)
        try:
            rate = float(header)
        except ValueError:
            return
        if operation is None or rate <= 0:
            return
        with self._lock:
            if rate != self._rates[operation]:
                logger.info(f"Amazon applies {rate:g} requests/s to {operation}.")
                self._rates[operation] = rate


class RateLimitBackoff(BackoffStrategy):
    """After a 429, wait one interval of the operation's applied rate before trying again."""

    def __init__(self, rate_limits: RateLimits) -> None:
        self._rate_limits = rate_limits

    def backoff_time(
        self,
        response_or_exception: requests.Response | requests.RequestException | None,
        attempt_count: int,
    ) -> float | None:
        response = response_or_exception
        if not isinstance(response, requests.Response) or response.status_code != 429:
            return None  # the CDK's exponential backoff serves 5xx and network errors
        request = response.request
        operation = operation_of(request.method or "", request.url or "") if request else None
        if operation is None:
            return None
        return 1.0 / self._rate_limits.rate(operation)
