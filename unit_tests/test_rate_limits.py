"""Operations are recognised from requests; applied rates are learnt; a 429 waits one interval."""

from __future__ import annotations

import pytest
import requests
from airbyte_cdk.sources.streams.call_rate import CallRateLimitHit

from source_sp_invoices.http.rate_limits import (
    RateLimitBackoff,
    RateLimits,
    SpApiBudget,
    operation_of,
)

BASE = "https://sellingpartnerapi-na.amazon.com/tax/invoices/2024-06-19"


@pytest.mark.parametrize(
    "method, path, operation",
    [
        ("GET", "/attributes?marketplaceId=X", "getInvoicesAttributes"),
        ("GET", "/invoices?dateStart=x", "getInvoices"),
        ("GET", "/invoices/abc-123", "getInvoice"),
        ("POST", "/exports", "createInvoicesExport"),
        ("GET", "/exports", "getInvoicesExports"),
        ("GET", "/exports/E1", "getInvoicesExport"),
        ("GET", "/documents/D1", "getInvoicesDocument"),
        ("POST", "/invoices", None),
        ("GET", "/other", None),
    ],
)
def test_operation_of(method, path, operation):
    assert operation_of(method, BASE + path) == operation


def response(status: int, path: str, rate: str | None = None) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    if rate is not None:
        answer.headers["x-amzn-RateLimit-Limit"] = rate
    answer.request = requests.Request("GET", BASE + path).prepare()
    return answer


def test_the_usage_plan_applies_until_amazon_says_otherwise():
    limits = RateLimits()
    assert limits.rate("getInvoices") == 0.1
    limits.observe(response(200, "/invoices", "6.0"))
    assert limits.rate("getInvoices") == 6.0
    assert limits.rate("getInvoicesDocument") == 0.0167  # other operations keep their plan
    limits.observe(response(200, "/invoices", "not-a-number"))
    limits.observe(response(200, "/invoices", "0"))
    assert limits.rate("getInvoices") == 6.0


def test_a_429_waits_one_interval_of_the_applied_rate():
    limits = RateLimits()
    backoff = RateLimitBackoff(limits)
    assert backoff.backoff_time(response(429, "/invoices"), 1) == pytest.approx(10.0)
    limits.observe(response(429, "/invoices", "2"))
    assert backoff.backoff_time(response(429, "/invoices"), 1) == pytest.approx(0.5)


def test_other_failures_use_the_cdk_exponential_backoff():
    backoff = RateLimitBackoff(RateLimits())
    assert backoff.backoff_time(response(503, "/invoices"), 1) is None
    assert backoff.backoff_time(requests.ConnectionError("x"), 1) is None


def prepared(path: str, method: str = "GET") -> requests.PreparedRequest:
    return requests.Request(method, BASE + path).prepare()


class Clock:
    def __init__(self) -> None:
        self.time = 0.0

    def __call__(self) -> float:
        return self.time


def test_the_budget_paces_each_operation_like_amazons_token_bucket():
    clock = Clock()
    budget = SpApiBudget(RateLimits(), clock)
    budget.acquire_call(prepared("/documents/D1"), block=False)
    with pytest.raises(CallRateLimitHit) as hit:  # one call a minute, a little slower
        budget.acquire_call(prepared("/documents/D2"), block=False)
    assert 60 < hit.value.time_to_wait.total_seconds() < 64
    for _ in range(20):  # getInvoices has a bucket of its own: a burst of 20
        budget.acquire_call(prepared("/invoices"), block=False)
    with pytest.raises(CallRateLimitHit) as hit:
        budget.acquire_call(prepared("/invoices"), block=False)
    assert 10 < hit.value.time_to_wait.total_seconds() < 11  # then one call per 10 s
    clock.time += 11
    budget.acquire_call(prepared("/invoices"), block=False)


def test_the_budget_follows_the_rate_amazon_reports():
    clock = Clock()
    limits = RateLimits()
    budget = SpApiBudget(limits, clock)
    budget.acquire_call(prepared("/documents/D1"), block=False)
    answer = response(200, "/documents/D1", "20")
    budget.update_from_response(answer.request, answer)
    assert limits.rate("getInvoicesDocument") == 20
    clock.time += 0.06
    budget.acquire_call(prepared("/documents/D2"), block=False)  # refilled at the new rate
    with pytest.raises(CallRateLimitHit) as hit:
        budget.acquire_call(prepared("/documents/D3"), block=False)
    assert hit.value.time_to_wait.total_seconds() < 0.06
