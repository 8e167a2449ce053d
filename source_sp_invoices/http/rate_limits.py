"""Which operation a request is, the rate Amazon applies to it, and how long a 429 waits."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from airbyte_cdk.sources.streams.call_rate import (
    APIBudget,
    BaseCallRatePolicy,
    CallRateLimitHit,
    HttpRequestRegexMatcher,
    RequestMatcher,
)
from airbyte_cdk.sources.streams.http.error_handlers import BackoffStrategy

from source_sp_invoices import settings

logger = logging.getLogger("airbyte")

_PATTERNS: dict[str, tuple[str, re.Pattern[str]]] = {
    name: (
        plan.method,
        re.compile(
            "/" + settings.API_VERSION_PATH + "/" + re.sub(r"\{\w+\}", "[^/]+", plan.path) + "$"
        ),
    )
    for name, plan in settings.USAGE_PLANS.items()
}


def operation_of(method: str, url: str) -> str | None:
    """The SP-API operation a request calls, or None for a URL outside the Invoices API."""
    path = urlsplit(url).path.rstrip("/")
    for name, (plan_method, pattern) in _PATTERNS.items():
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

    def observe(self, response: requests.Response) -> str | None:
        """Learn the rate in x-amzn-RateLimit-Limit; return the operation if its rate changed."""
        header = response.headers.get("x-amzn-RateLimit-Limit")
        request = response.request
        if not header or request is None or not request.method or not request.url:
            return None
        operation = operation_of(request.method, request.url)
        try:
            rate = float(header)
        except ValueError:
            return None
        if operation is None or rate <= 0:
            return None
        with self._lock:
            if rate == self._rates[operation]:
                return None
            logger.info(f"Amazon applies {rate:g} requests/s to {operation}.")
            self._rates[operation] = rate
            return operation


class TokenBucketPolicy(BaseCallRatePolicy):
    """Amazon's own algorithm as a CDK call-rate policy: `burst` tokens refilled at `rate`/s.

    The CDK's moving-window policy would allow the same average rate, but after a burst it waits
    until the whole window has passed, where Amazon's bucket gives one call per interval.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        matchers: list[RequestMatcher],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(matchers=matchers)
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._clock = clock
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self._refill()
            self._rate = rate

    def try_acquire(self, request: Any, weight: int) -> None:
        with self._lock:
            self._refill()
            if self._tokens >= weight:
                self._tokens -= weight
                return
            wait = (weight - self._tokens) / self._rate
        raise CallRateLimitHit(
            error="the operation's usage plan allows no call yet",
            item=request,
            weight=weight,
            rate=f"{self._rate:g}/s, burst {self._burst}",
            time_to_wait=timedelta(seconds=wait),
        )

    def wait_time(self) -> float:
        """Seconds until a call would be allowed; 0 when one is allowed now (nothing is taken)."""
        with self._lock:
            self._refill()
            return max(0.0, (1 - self._tokens) / self._rate)

    def update(self, available_calls: int | None, call_reset_ts: Any) -> None:
        """Amazon reports a rate, not calls left: SpApiBudget calls set_rate() instead."""


class SpApiBudget(APIBudget):
    """The CDK's call-rate budget with one token bucket per operation, at the applied rate.

    Buckets refill a little slower than Amazon's, so that clock drift does not end in 429s; when
    a response reports another rate, that operation's bucket follows it.
    """

    def __init__(
        self, rate_limits: RateLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._rate_limits = rate_limits
        self._buckets = {
            name: TokenBucketPolicy(
                rate_limits.rate(name) * (1 - settings.PACING_MARGIN),
                plan.burst,
                [
                    HttpRequestRegexMatcher(
                        method=plan.method, url_path_pattern=_PATTERNS[name][1].pattern
                    )
                ],
                clock,
            )
            for name, plan in settings.USAGE_PLANS.items()
        }
        super().__init__(policies=list(self._buckets.values()))

    def wait_time(self, operation: str) -> float:
        """Seconds until the operation may be called again."""
        return self._buckets[operation].wait_time()

    def update_from_response(self, request: Any, response: Any) -> None:
        if not isinstance(response, requests.Response):
            return
        operation = self._rate_limits.observe(response)
        if operation is not None:
            rate = self._rate_limits.rate(operation) * (1 - settings.PACING_MARGIN)
            self._buckets[operation].set_rate(rate)


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
