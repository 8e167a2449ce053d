"""The SP-API emulator over real HTTP: LWA, auth, paging, filters, limits, faults, data realism.

Everything time-related runs on a scaled or manual clock, so the file takes a few seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests

from sp_api_emulator import (
    MARKETPLACE_ID,
    TEST_CLIENT_ID,
    TEST_CLIENT_SECRET,
    TEST_REFRESH_TOKEN,
    Dataset,
    EmulatorServer,
    ManualClock,
    day_profile,
)
from sp_api_emulator.clock import ScaledClock
from sp_api_emulator.rate_limits import RateLimiter

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "/tax/invoices/2024-06-19"
START = date(2024, 7, 1)
DAYS = 10
WINDOW_START = "2024-07-02T00:00:00Z"
WINDOW_END = "2024-07-06T23:59:59.999Z"
UNAUTHORIZED = {"code": "Unauthorized", "message": "Access to requested resource is denied."}


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """A small data set shared by read-only tests."""
    return Dataset.generate(seed=7, start=START, days=DAYS, invoices_per_day=(0, 40))


@pytest.fixture
def server(dataset: Dataset) -> Iterator[EmulatorServer]:
    """A fast server: time x1000 and generous plans, so functional tests are never throttled."""
    fast = {"getInvoices": 100.0, "getInvoice": 100.0}
    with EmulatorServer(dataset, time_scale=1000, rate_overrides=fast) as emulator:
        yield emulator


class Api:
    """A tiny SP-API client for the tests."""

    def __init__(self, emulator: EmulatorServer, token: str | None = None) -> None:
        self.emulator = emulator
        self.session = requests.Session()
        self.token = token if token is not None else emulator.issue_token()

    def get(self, path: str, params: Any = None, **headers: str) -> requests.Response:
        """GET an SP-API path with the access token (and any extra headers)."""
        all_headers = {"x-amz-access-token": self.token, **headers}
        return self.session.get(
            self.emulator.url + PREFIX + path, params=params, headers=all_headers, timeout=10
        )

    def invoices(self, **params: Any) -> requests.Response:
        """GET /invoices of the Brazil marketplace."""
        return self.get("/invoices", {"marketplaceId": MARKETPLACE_ID, **params})

    def all_pages(self, **params: Any) -> tuple[list[dict[str, Any]], int]:
        """Collect every page; return the invoices and how many calls it took."""
        collected: list[dict[str, Any]] = []
        calls, token = 0, None
        while True:
            # Amazon's rule: a nextToken travels alone (pageSize may come along)
            page_params = {"nextToken": token, "pageSize": params.get("pageSize", 100)}
            response = self.invoices(**(page_params if token else params))
            calls += 1
            assert response.status_code == 200, response.text
            body = response.json()
            assert len(body["invoices"]) <= int(params.get("pageSize", 100))
            collected.extend(body["invoices"])
            token = body.get("nextToken")
            if token is None:
                return collected, calls


def lwa(emulator: EmulatorServer, **overrides: str) -> requests.Response:
    """POST a refresh-token grant, good credentials unless overridden."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": TEST_REFRESH_TOKEN,
        "client_id": TEST_CLIENT_ID,
        "client_secret": TEST_CLIENT_SECRET,
        **overrides,
    }
    return requests.post(emulator.lwa_url, data=form, timeout=10)


def first_error(response: requests.Response) -> dict[str, str]:
    """Return the only error of an ErrorList body."""
    errors = response.json()["errors"]
    assert len(errors) == 1
    return errors[0]


# --- Login with Amazon -----------------------------------------------------------------------


def test_token_exchange_issues_a_usable_token(dataset: Dataset) -> None:
    with EmulatorServer(dataset) as emulator:
        response = lwa(emulator)
        assert response.status_code == 200
        body = response.json()
        assert body["access_token"].startswith("Atza|")
        assert body["refresh_token"] == TEST_REFRESH_TOKEN
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 3600
        api = Api(emulator, body["access_token"])
        assert api.invoices().status_code == 200
        second = lwa(emulator).json()["access_token"]
        assert second != body["access_token"]
        assert api.invoices().status_code == 200  # the first token stays valid
        assert Api(emulator, second).invoices().status_code == 200


@pytest.mark.parametrize("field", ["client_id", "client_secret"])
def test_wrong_client_is_invalid_client(server: EmulatorServer, field: str) -> None:
    response = lwa(server, **{field: "wrong"})
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed",
    }


def test_wrong_refresh_token_is_invalid_grant(server: EmulatorServer) -> None:
    response = lwa(server, refresh_token="Atzr|revoked")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "The request has an invalid grant parameter : refresh_token",
    }


def test_wrong_grant_type_is_refused(server: EmulatorServer) -> None:
    response = lwa(server, grant_type="client_credentials")  # LWA's grant for grantless calls
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_token_expires_on_the_scaled_clock(dataset: Dataset) -> None:
    real = ManualClock()  # the real seconds the time scale multiplies, moved by hand
    with EmulatorServer(dataset, time_scale=10_000, clock=real) as emulator:  # 3600 s: 0.36 s
        body = lwa(emulator).json()
        assert body["expires_in"] == 1  # ceil(0.36): reported in real seconds
        api = Api(emulator, body["access_token"])
        assert api.get("/attributes", {"marketplaceId": MARKETPLACE_ID}).status_code == 200
        real.advance(0.35)  # 3500 emulator seconds: still valid
        assert api.get("/attributes", {"marketplaceId": MARKETPLACE_ID}).status_code == 200
        real.advance(0.02)  # 3700: expired
        response = api.get("/attributes", {"marketplaceId": MARKETPLACE_ID})
        assert response.status_code == 403
        assert first_error(response) == {
            **UNAUTHORIZED,
            "details": "The access token you provided has expired.",
        }
        api.token = lwa(emulator).json()["access_token"]
        assert api.get("/attributes", {"marketplaceId": MARKETPLACE_ID}).status_code == 200


def test_expire_tokens_switch(server: EmulatorServer) -> None:
    api = Api(server)
    server.expire_tokens()
    response = api.invoices()
    assert response.status_code == 403
    assert first_error(response)["details"] == "The access token you provided has expired."


# --- gateway checks --------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["", "Atza|never-issued"])
def test_unknown_or_missing_token_is_403(server: EmulatorServer, token: str) -> None:
    response = Api(server, token).get("/attributes", {"marketplaceId": MARKETPLACE_ID})
    assert response.status_code == 403
    assert first_error(response) == {**UNAUTHORIZED, "details": ""}
    assert response.headers["x-amzn-RateLimit-Limit"] == "1000.0"
    assert response.headers["x-amzn-RequestId"]


def test_missing_role_is_403(dataset: Dataset) -> None:
    with EmulatorServer(dataset, deny_role=True) as emulator:
        response = Api(emulator).invoices()
        assert response.status_code == 403
        assert first_error(response) == {**UNAUTHORIZED, "details": ""}


def test_authorization_header_is_refused(server: EmulatorServer) -> None:
    api = Api(server)
    response = api.get(
        "/attributes", {"marketplaceId": MARKETPLACE_ID}, Authorization="Bearer " + api.token
    )
    assert response.status_code == 400
    assert "Authorization" in first_error(response)["message"]


def test_unknown_route_is_404_with_errors_body(server: EmulatorServer) -> None:
    for response in (
        Api(server).get("/nothing-here"),
        requests.get(server.url + "/orders/v0/orders", timeout=10),
    ):
        assert response.status_code == 404
        assert first_error(response)["code"] == "NotFound"
        assert response.headers["x-amzn-RequestId"]


# --- getInvoicesAttributes and getInvoice ----------------------------------------------------


def test_attributes_list_every_value_the_data_uses(
    server: EmulatorServer, dataset: Dataset
) -> None:
    response = Api(server).get("/attributes", {"marketplaceId": MARKETPLACE_ID})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    attributes = response.json()["invoicesAttributes"]
    assert attributes == dataset.attributes
    values = {name: {o["value"] for o in options} for name, options in attributes.items()}
    for option in attributes["invoiceStatusOptions"]:
        assert set(option) == {"value", "description"} and option["description"]
    for invoice in dataset.invoices():
        assert invoice["status"] in values["invoiceStatusOptions"]
        assert invoice["invoiceType"] in values["invoiceTypeOptions"]
        assert invoice["transactionType"] in values["transactionTypeOptions"]
        for identifier in invoice["transactionIds"]:
            assert identifier["name"] in values["transactionIdentifierNameOptions"]
    assert {"AUTHORIZED", "CANCELED", "REJECTED"} <= values["invoiceStatusOptions"]
    assert {"BUSINESS_TRANSACTION_ID", "SHIPMENT_ID"} <= values["transactionIdentifierNameOptions"]


def test_get_invoice_and_unknown_invoice(server: EmulatorServer, dataset: Dataset) -> None:
    api = Api(server)
    expected = dataset.invoices()[3]
    response = api.get(f"/invoices/{expected['id']}", {"marketplaceId": MARKETPLACE_ID})
    assert response.status_code == 200
    assert response.json() == {"invoice": expected}
    missing = api.get(
        "/invoices/00000000-0000-4000-8000-000000000000", {"marketplaceId": MARKETPLACE_ID}
    )
    assert missing.status_code == 404
    assert first_error(missing)["code"] == "NotFound"


# --- getInvoices: paging, order, filters, windows -------------------------------------------


@pytest.mark.parametrize("order", ["DESC", "ASC"])
def test_paging_returns_exactly_the_truth(
    server: EmulatorServer, dataset: Dataset, order: str
) -> None:
    api = Api(server)
    params = {"dateStart": WINDOW_START, "dateEnd": WINDOW_END, "pageSize": 7, "sortOrder": order}
    collected, calls = api.all_pages(**params)
    truth = dataset.invoices(WINDOW_START, WINDOW_END, sort_order=order)
    assert len(truth) > 30
    assert collected == truth
    assert calls == -(-len(truth) // 7)
    dates = [i["date"] for i in collected]
    assert dates == sorted(dates, reverse=order == "DESC")


def test_default_sort_order_is_descending(server: EmulatorServer, dataset: Dataset) -> None:
    body = Api(server).invoices(dateStart=WINDOW_START, dateEnd=WINDOW_END, pageSize=200).json()
    assert body["invoices"] == dataset.invoices(WINDOW_START, WINDOW_END)
    assert body["invoices"][0]["date"] > body["invoices"][-1]["date"]
    assert "nextToken" not in body


def _filter_cases(dataset: Dataset) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(query params, truth-query keywords) pairs covering every filter."""
    sample = next(i for i in dataset.invoices(sort_order="ASC") if len(i["transactionIds"]) == 2)
    shipment = sample["transactionIds"][1]
    return [
        ({"statuses": "CANCELED"}, {"statuses": ["CANCELED"]}),
        ({"statuses": "CANCELED,REJECTED"}, {"statuses": ["CANCELED", "REJECTED"]}),
        ({"statuses": ["AUTHORIZED", "REJECTED"]}, {"statuses": ["AUTHORIZED", "REJECTED"]}),
        ({"invoiceType": "SYMBOLIC_RETURN"}, {"invoice_type": "SYMBOLIC_RETURN"}),
        ({"transactionType": "CUSTOMER_RETURN"}, {"transaction_type": "CUSTOMER_RETURN"}),
        ({"series": "2"}, {"series": "2"}),
        (
            {"externalInvoiceId": sample["externalInvoiceId"], "series": sample["series"]},
            {"external_invoice_id": sample["externalInvoiceId"], "series": sample["series"]},
        ),
        (
            {
                "transactionIdentifierName": shipment["name"],
                "transactionIdentifierId": shipment["id"],
            },
            {"transaction_identifier": (shipment["name"], shipment["id"])},
        ),
    ]


def test_filters_match_the_truth(server: EmulatorServer, dataset: Dataset) -> None:
    api = Api(server)
    whole = {"dateStart": "2024-07-01T00:00:00Z", "dateEnd": "2024-07-11T00:00:00Z"}
    for params, keywords in _filter_cases(dataset):
        collected, _ = api.all_pages(pageSize=5, **whole, **params)
        truth = dataset.invoices(whole["dateStart"], whole["dateEnd"], **keywords)
        assert truth, params
        assert collected == truth, params
        assert len(truth) < len(dataset), params


def test_date_window_bounds_are_inclusive(dataset: Dataset) -> None:
    local = Dataset.generate(seed=11, start=START, days=2, invoices_per_day=3)
    first = local.add_invoice("2024-07-01T10:00:00.000Z", status="AUTHORIZED")
    last = local.add_invoice(datetime(2024, 7, 1, 11, 0, 0, 500_000, tzinfo=UTC))
    with EmulatorServer(local, time_scale=1000, rate_overrides={"getInvoices": 100}) as emulator:
        api = Api(emulator)

        def ids(start: str, end: str) -> set[str]:
            return {i["id"] for i in api.invoices(dateStart=start, dateEnd=end).json()["invoices"]}

        both = ids("2024-07-01T10:00:00Z", "2024-07-01T11:00:00.500Z")
        assert {first["id"], last["id"]} <= both
        assert last["id"] not in ids("2024-07-01T10:00:00Z", "2024-07-01T11:00:00.499Z")
        assert first["id"] not in ids("2024-07-01T10:00:00.001Z", "2024-07-01T11:00:00.5Z")
        # without Z, or with an offset, the same instants are meant
        assert {first["id"], last["id"]} <= ids(
            "2024-07-01T10:00:00", "2024-07-01T08:00:00.5-03:00"
        )
        truth = {i["id"] for i in local.invoices("2024-07-01T10:00:00Z", "2024-07-01T11:00:00.5Z")}
        assert truth == both


def test_missing_dates_mean_the_last_24_hours(dataset: Dataset) -> None:
    now = datetime(2024, 7, 5, 12, 0, tzinfo=UTC)
    fast = {"getInvoices": 100.0}
    with EmulatorServer(dataset, time_scale=1000, rate_overrides=fast, now=lambda: now) as emulator:
        collected, _ = Api(emulator).all_pages(pageSize=10)
        assert collected == dataset.invoices(now - timedelta(hours=24), now)
        only_end, _ = Api(emulator).all_pages(dateEnd="2024-07-03T00:00:00Z")
        assert only_end == dataset.invoices("2024-07-02T00:00:00Z", "2024-07-03T00:00:00Z")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"pageSize": 0}, "pageSize"),
        ({"pageSize": 201}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"dateStart": "yesterday"}, "dateStart"),
        ({"dateEnd": "2024-07-02"}, "dateEnd"),
        ({"marketplaceId": "ATVPDKIKX0DER"}, "marketplaceId"),
        ({"marketplaceId": ""}, "marketplaceId"),
        ({"statuses": "AUTHORIZED,LOST"}, "statuses"),
        ({"invoiceType": "GIFT"}, "invoiceType"),
        ({"transactionType": "BARTER"}, "transactionType"),
        ({"sortOrder": "UP"}, "sortOrder"),
        ({"sortBy": "AMOUNT"}, "sortBy"),
        ({"transactionIdentifierName": "SHIPMENT_ID"}, "transactionIdentifierId"),
        ({"transactionIdentifierId": "D123"}, "transactionIdentifierName"),
        ({"transactionIdentifierName": "ORDER_ID", "transactionIdentifierId": "1"}, "Name"),
        ({"dateStart": "2024-07-05T00:00:00Z", "dateEnd": "2024-07-04T00:00:00Z"}, "dateStart"),
        ({"sellerId": "A1"}, "sellerId"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    server: EmulatorServer, params: dict[str, Any], named: str
) -> None:
    response = Api(server).invoices(**params)
    assert response.status_code == 400
    error = first_error(response)
    assert error["code"] == "InvalidInput"
    assert named in error["message"]
    assert error["details"] == ""


def test_missing_marketplace_is_400(server: EmulatorServer) -> None:
    for path in ("/invoices", "/attributes", "/invoices/some-id"):
        response = Api(server).get(path)
        assert response.status_code == 400
        assert "marketplaceId" in first_error(response)["message"]


def test_next_token_carries_the_query_and_travels_alone(
    server: EmulatorServer, dataset: Dataset
) -> None:
    api = Api(server)
    params = {"dateStart": WINDOW_START, "dateEnd": WINDOW_END, "pageSize": 3, "sortOrder": "ASC"}
    params["statuses"] = "AUTHORIZED"
    first = api.invoices(**params).json()
    token = first["nextToken"]
    alone = api.invoices(nextToken=token)  # the page size of the first call is kept
    assert alone.status_code == 200
    truth = dataset.invoices(WINDOW_START, WINDOW_END, statuses=["AUTHORIZED"], sort_order="ASC")
    assert first["invoices"] + alone.json()["invoices"] == truth[:6]
    bigger = api.invoices(nextToken=token, pageSize=9).json()["invoices"]
    assert bigger == truth[3:12]
    for extra in (
        params,
        {"statuses": "AUTHORIZED"},
        {"dateStart": WINDOW_START},
        {"sortOrder": "ASC"},
    ):
        response = api.invoices(**extra, nextToken=token)
        assert response.status_code == 400, extra
        assert response.json() == {
            "errors": [
                {
                    "code": "400",
                    "message": "Invalid Request.",
                    "details": "Specifying nextToken with any other parameters will cause the "
                    "request to fail.",
                }
            ]
        }
    for bad in ("garbage!", token[:-4] + "AAAA"):
        response = api.invoices(nextToken=bad)
        assert response.status_code == 400, bad
        assert "nextToken" in first_error(response)["message"]


def test_late_status_change_shows_in_the_same_window(dataset: Dataset) -> None:
    local = Dataset.generate(seed=3, start=START, days=2, invoices_per_day=5)
    target = next(i for i in local.invoices() if i["status"] == "AUTHORIZED")
    with EmulatorServer(local, time_scale=1000, rate_overrides={"getInvoices": 100}) as emulator:
        api = Api(emulator)
        window = {"dateStart": "2024-07-01T00:00:00Z", "dateEnd": "2024-07-03T00:00:00Z"}
        local.set_status(target["id"], "CANCELED")
        after, _ = api.all_pages(**window, statuses="CANCELED")
        assert target["id"] in {i["id"] for i in after}
        record = local.record(target["id"])
        assert record.cancellation is not None and len(record.cancellation.justification) >= 15
        assert local.invoice(target["id"])["status"] == "CANCELED"


# --- rate limits -----------------------------------------------------------------------------


def test_bucket_exhaustion_and_refill_on_a_manual_clock(dataset: Dataset) -> None:
    clock = ManualClock()
    with EmulatorServer(dataset, clock=clock) as emulator:
        api = Api(emulator)
        statuses = [api.invoices(pageSize=1).status_code for _ in range(21)]
        assert statuses == [200] * 20 + [429]
        throttled = api.invoices(pageSize=1)
        assert throttled.status_code == 429
        assert first_error(throttled) == {
            "code": "QuotaExceeded",
            "message": "You exceeded your quota for the requested resource.",
            "details": "",
        }
        assert throttled.headers["x-amzn-RateLimit-Limit"] == "0.1"
        clock.advance(9.9)
        assert api.invoices(pageSize=1).status_code == 429
        clock.advance(0.1)  # 10 s at 0.1 req/s = one token
        assert api.invoices(pageSize=1).status_code == 200
        assert api.invoices(pageSize=1).status_code == 429
        attributes = {"marketplaceId": MARKETPLACE_ID}
        assert [api.get("/attributes", attributes).status_code for _ in range(2)] == [200, 429]
        assert emulator.stats.count("getInvoices", 429) == 4


def test_a_call_may_arrive_a_few_real_milliseconds_early_but_not_keep_doing_so() -> None:
    """Scheduling jitter, multiplied by the time scale, is no 429; a faster pace still is."""

    def limiter_and_clock(**options: float) -> tuple[RateLimiter, ManualClock, float]:
        real = ManualClock()
        limiter = RateLimiter(ScaledClock(60, real), **options)  # createInvoicesExport: 10/s
        assert limiter.acquire("createInvoicesExport")
        return limiter, real, 1 / float(limiter.effective_rate("createInvoicesExport"))

    limiter, real, interval = limiter_and_clock()
    real.advance(interval - 0.015)  # 15 ms early: the client paced, its packet was late
    assert limiter.acquire("createInvoicesExport")
    limiter, real, interval = limiter_and_clock()
    real.advance(interval - 0.03)  # 30 ms early: more than the 20 ms of grace
    assert not limiter.acquire("createInvoicesExport")
    limiter, real, interval = limiter_and_clock()
    outcomes = []
    for _ in range(6):  # a client 10 % too fast: the grace is used up, then 429s
        real.advance(interval / 1.1)
        outcomes.append(limiter.acquire("createInvoicesExport"))
    assert outcomes[0] and not all(outcomes)
    limiter, real, interval = limiter_and_clock(arrival_grace=0)
    real.advance(interval - 0.001)
    assert not limiter.acquire("createInvoicesExport")


def test_bucket_refills_in_real_time_with_a_time_scale(dataset: Dataset) -> None:
    real = ManualClock()
    # attributes: 1 req/emulator s, so 4 req/real s (a token every 0.25 s), burst 1; a call may
    # come 20 ms early (0.08 of a token at this rate)
    with EmulatorServer(dataset, time_scale=4, clock=real) as emulator:
        api = Api(emulator)
        attributes = {"marketplaceId": MARKETPLACE_ID}
        assert api.get("/attributes", attributes).status_code == 200
        assert api.get("/attributes", attributes).status_code == 429
        real.advance(0.2)  # 0.8 of a token: more than 20 ms early
        assert api.get("/attributes", attributes).status_code == 429
        real.advance(0.05)  # 0.25 s since the first call: a whole token
        assert api.get("/attributes", attributes).status_code == 200


def test_rate_limit_header_reports_the_effective_rate(dataset: Dataset) -> None:
    with EmulatorServer(dataset, time_scale=60, rate_overrides={"getInvoice": 5}) as emulator:
        api = Api(emulator)
        assert api.invoices().headers["x-amzn-RateLimit-Limit"] == "6.0"
        attributes = api.get("/attributes", {"marketplaceId": MARKETPLACE_ID})
        assert attributes.headers["x-amzn-RateLimit-Limit"] == "60.0"
        one = api.get("/invoices/unknown", {"marketplaceId": MARKETPLACE_ID})
        assert one.headers["x-amzn-RateLimit-Limit"] == "300.0"
        emulator.set_rate("getInvoices", 0.5)
        assert api.invoices().headers["x-amzn-RateLimit-Limit"] == "30.0"
    with EmulatorServer(dataset) as emulator:
        assert Api(emulator).invoices().headers["x-amzn-RateLimit-Limit"] == "0.1"


# --- faults, control, stats ------------------------------------------------------------------


def test_fail_next_answers_the_next_calls_with_errors(server: EmulatorServer) -> None:
    api = Api(server)
    server.faults.fail_next("getInvoices", 503, count=2)
    server.faults.fail_next("getInvoice", 500)
    first, second, third = (api.invoices() for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (503, 503, 200)
    assert first_error(first)["code"] == "ServiceUnavailable"
    failed = api.get("/invoices/x", {"marketplaceId": MARKETPLACE_ID})
    assert failed.status_code == 500 and first_error(failed)["code"] == "InternalFailure"
    server.faults.fail_next("lwaToken", 500)
    assert lwa(server).status_code == 500
    assert lwa(server).status_code == 200
    with pytest.raises(ValueError, match="unknown operation"):
        server.faults.fail_next("getInvoicez", 500)


def test_body_faults_garble_or_cut_the_next_answers(server: EmulatorServer) -> None:
    api = Api(server)
    server.faults.garble_next("getInvoices")
    server.faults.cut_next("getInvoices")
    garbled = api.invoices()
    assert garbled.status_code == 200 and garbled.text.startswith("<html>")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.invoices()  # the body stops short of its Content-Length
    assert api.invoices().json()["invoices"] is not None  # then answers are whole again
    with pytest.raises(ValueError, match="unknown operation"):
        server.faults.cut_next("getInvoicez")


def test_latency_delays_answers(server: EmulatorServer) -> None:
    api = Api(server)
    server.faults.latency["getInvoices"] = 0.2
    began = time.monotonic()
    assert api.invoices().status_code == 200
    assert time.monotonic() - began >= 0.2


def test_control_endpoint_steers_a_running_emulator() -> None:
    dataset = Dataset.generate(seed=7, start=START, days=2, invoices_per_day=5)
    with EmulatorServer(dataset, time_scale=1000, rate_overrides={"getInvoices": 100}) as server:
        _steer_over_http(server, dataset)


def _steer_over_http(server: EmulatorServer, dataset: Dataset) -> None:
    api = Api(server)
    control = server.url + "/_emulator/control"
    state = requests.post(control, json={"deny_role": True}, timeout=10).json()
    assert state["deny_role"] is True
    assert api.invoices().status_code == 403
    changes = {
        "deny_role": False,
        "fail_next": [{"operation": "getInvoices", "status": 400, "count": 1}],
        "latency": {"getInvoice": 0.01},
        "rate_overrides": {"getInvoices": 2},
    }
    state = requests.post(control, json=changes, timeout=10).json()
    assert state["fail_next"]["getInvoices"][0]["code"] == "InvalidInput"
    assert state["latency"] == {"getInvoice": 0.01}
    assert state["rate_overrides"] == {"getInvoices": 2.0}
    assert api.invoices().status_code == 400
    assert api.invoices().headers["x-amzn-RateLimit-Limit"] == "2000.0"
    requests.post(control, json={"expire_tokens": True}, timeout=10)
    assert first_error(api.invoices())["details"] == "The access token you provided has expired."
    target = dataset.invoices()[0]["id"]
    requests.post(
        control,
        json={"set_status": [{"invoiceId": target, "status": "REJECTED", "errorCode": "225"}]},
        timeout=10,
    )
    assert dataset.invoice(target)["status"] == "REJECTED"
    assert dataset.invoice(target)["errorCode"] == "225"
    bad = requests.post(control, json={"deny_rol": True}, timeout=10)
    assert bad.status_code == 400 and "deny_rol" in first_error(bad)["message"]
    assert requests.get(control, timeout=10).json()["deny_role"] is False
    info = requests.get(server.url + "/_emulator/info", timeout=10).json()
    assert info["seed"] == 7 and info["invoices"] == len(dataset) == 10


def test_stats_count_requests_per_operation_and_status(server: EmulatorServer) -> None:
    api = Api(server)
    api.invoices()
    api.invoices(pageSize=0)
    api.get("/attributes", {"marketplaceId": MARKETPLACE_ID})
    lwa(server, client_secret="nope")
    stats = requests.get(server.url + "/_emulator/stats", timeout=10).json()
    assert stats["operations"]["getInvoices"] == {"total": 2, "statuses": {"200": 1, "400": 1}}
    assert stats["operations"]["getInvoicesAttributes"]["total"] == 1
    assert stats["operations"]["lwaToken"]["statuses"] == {"401": 1}
    assert stats["statuses"] == {"200": 2, "400": 1, "401": 1}
    assert stats["total"] == 4
    assert server.stats.count("getInvoices") == 2
    logged = requests.get(
        server.url + "/_emulator/requests", params={"operation": "getInvoices"}, timeout=10
    ).json()["requests"]
    assert [r["query"].get("pageSize") for r in logged] == [None, ["0"]]
    assert [r["token"] for r in logged] == [1, 1]  # the issue number of the token, not it
    reset = requests.post(server.url + "/_emulator/reset-stats", timeout=10).json()
    assert reset["total"] == 0 and server.stats.count() == 0


def test_stats_wait_for_answers_and_tell_the_clients_apart(server: EmulatorServer) -> None:
    assert server.stats.wait("getInvoices", timeout=0) is False  # none yet
    answered: list[bool] = []
    waiter = threading.Thread(
        target=lambda: answered.append(server.stats.wait("getInvoices", 200, count=2, timeout=30))
    )
    waiter.start()
    first, second = Api(server), Api(server)  # two clients, each with its own token
    assert first.invoices().status_code == second.invoices().status_code == 200
    waiter.join(timeout=30)
    assert answered == [True]
    Api(server, token="").invoices()  # no token: 403, and no issue number
    calls = server.stats.requests("getInvoices")
    assert [(call.status, call.token) for call in calls] == [(200, 1), (200, 2), (403, None)]


# --- the data set ----------------------------------------------------------------------------


def test_same_seed_same_data_other_seed_other_data() -> None:
    dataset = Dataset.generate(seed=7, start=START, days=DAYS, invoices_per_day=(0, 40))
    again = Dataset.generate(seed=7, start=START, days=DAYS, invoices_per_day=(0, 40))
    assert again.invoices() == dataset.invoices()
    assert again.records() == dataset.records()
    other = Dataset.generate(seed=8, start=START, days=DAYS, invoices_per_day=(0, 40))
    assert {i["id"] for i in other.invoices()}.isdisjoint({i["id"] for i in dataset.invoices()})
    # a day's invoices do not depend on how many days follow it
    shorter = Dataset.generate(seed=7, start=START, days=3, invoices_per_day=(0, 40))
    assert shorter.invoices() == dataset.invoices(
        "2024-07-01T00:00:00Z", "2024-07-03T23:59:59.999Z"
    )


def test_quiet_and_busy_days_on_request() -> None:
    profile = Dataset.generate(seed=5, start=START, days=30, invoices_per_day=day_profile())
    counts = list(profile.counts_by_day().values())
    assert len(counts) == 30
    assert any(c <= 3 for c in counts) and any(c >= 150 for c in counts)
    explicit = [0, 2, 180]
    chosen = Dataset.generate(
        seed=5, start=START, days=3, invoices_per_day=lambda day, _rng: explicit[day.day - 1]
    )
    assert list(chosen.counts_by_day().values()) == explicit


def _mod11(digits: str, weights: list[int]) -> int:
    remainder = sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def valid_cnpj(cnpj: str) -> bool:
    weights = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    first = _mod11(cnpj[:12], weights[1:])
    return len(cnpj) == 14 and cnpj[12:] == f"{first}{_mod11(cnpj[:12] + str(first), weights)}"


def valid_cpf(cpf: str) -> bool:
    first = _mod11(cpf[:9], list(range(10, 1, -1)))
    second = _mod11(cpf[:9] + str(first), list(range(11, 1, -1)))
    return len(cpf) == 11 and len(set(cpf)) > 1 and cpf[9:] == f"{first}{second}"


def valid_access_key(key: str) -> bool:
    weights = [(2, 3, 4, 5, 6, 7, 8, 9)[i % 8] for i in range(43)][::-1]
    return len(key) == 44 and key.isdigit() and int(key[43]) == _mod11(key[:43], weights)


def test_nfe_data_is_realistic_and_adds_up(dataset: Dataset) -> None:
    records = dataset.records()
    statuses = {r.status for r in records}
    assert {"AUTHORIZED", "CANCELED", "REJECTED"} <= statuses
    text = []
    people = companies = 0
    for record in records:
        nfe = record.nfe
        api = record.to_api()
        assert api["date"].endswith("Z") and len(api["date"]) == 24
        assert valid_cnpj(nfe.issuer.document)
        if nfe.recipient.document_type == "CPF":
            people += 1
            assert valid_cpf(nfe.recipient.document)
        else:
            companies += 1
            assert valid_cnpj(nfe.recipient.document)
        key = nfe.access_key
        assert valid_access_key(key)
        local = nfe.issued_at.astimezone(UTC) - timedelta(hours=3)
        assert key[:2] == str(nfe.uf_code) and key[2:6] == f"{local:%y%m}"
        assert key[6:20] == nfe.issuer.document and key[20:22] == "55"
        assert int(key[22:25]) == nfe.series and int(key[25:34]) == nfe.number
        assert api["externalInvoiceId"] == str(nfe.number) and api["series"] == str(nfe.series)
        assert 1 <= len(nfe.items) <= 5
        assert [item.number for item in nfe.items] == list(range(1, len(nfe.items) + 1))
        totals = nfe.totals
        for item in nfe.items:
            for value in (item.quantity, item.unit_value, item.gross_value, item.icms_value):
                assert isinstance(value, Decimal)
            assert item.gross_value == item.quantity * item.unit_value
            assert len(item.ncm) == 8 and len(item.cfop) == 4 and len(item.ean) == 13
        assert totals.products == sum(i.gross_value for i in nfe.items)
        assert totals.discount == sum(i.discount for i in nfe.items)
        assert totals.freight == sum(i.freight for i in nfe.items)
        assert totals.icms_value == sum(i.icms_value for i in nfe.items)
        assert totals.pis == sum(i.pis_value for i in nfe.items)
        assert totals.cofins == sum(i.cofins_value for i in nfe.items)
        assert totals.invoice_total == (
            totals.products
            - totals.discount
            + totals.freight
            + totals.insurance
            + totals.other
            + totals.ipi
        )
        assert totals.invoice_total == sum(i.net_value for i in nfe.items)
        if record.status in ("AUTHORIZED", "CANCELED"):
            assert record.protocol.status_code == "100"
            assert record.protocol.reason == "Autorizado o uso da NF-e"
            assert len(record.protocol.number) == 15
            assert api["errorCode"] == "" and api["govResponse"] == ""
        if record.status == "REJECTED":
            assert api["errorCode"] and api["govResponse"].startswith("Rejeição")
        assert (record.cancellation is not None) == (record.status == "CANCELED")
        text += [
            nfe.recipient.name,
            nfe.recipient.address.city,
            *(i.description for i in nfe.items),
        ]
    assert people and companies
    assert any(not t.isascii() for t in text)
    assert any(ch in "".join(text) for ch in "ãçéíóú")


# --- command line ----------------------------------------------------------------------------


def _run_cli(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "sp_api_emulator", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_help_and_loopback_only() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "sp_api_emulator", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--invoices-per-day" in helped.stdout and "--ready-file" in helped.stdout
    refused = _run_cli("--host", "0.0.0.0")
    _, stderr = refused.communicate(timeout=20)
    assert refused.returncode == 2 and "loopback" in stderr


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "emulator.url"
    process = _run_cli(
        "--seed", "42", "--start", "2024-07-01", "--days", "3", "--invoices-per-day", "5-5",
        "--time-scale", "60", "--ready-file", str(ready),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the emulator never wrote its ready file"
            time.sleep(0.02)
        url = ready.read_text().strip()
        assert url.startswith("http://127.0.0.1:")
        assert requests.get(url + "/_emulator/health", timeout=10).json() == {"status": "ok"}
        info = requests.get(url + "/_emulator/info", timeout=10).json()
        assert info["invoices"] == 15 and info["timeScale"] == 60
        token = lwa_at(url)
        response = requests.get(
            url + PREFIX + "/invoices",
            params={"marketplaceId": MARKETPLACE_ID, "dateStart": "2024-07-01T00:00:00Z",
                    "dateEnd": "2024-07-04T00:00:00Z", "pageSize": 200},
            headers={"x-amz-access-token": token},
            timeout=10,
        )  # fmt: skip
        truth = Dataset.generate(42, date(2024, 7, 1), 3, (5, 5)).invoices()
        assert response.json()["invoices"] == truth
        assert response.headers["x-amzn-RateLimit-Limit"] == "6.0"
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, _ = process.communicate(timeout=15)
    assert process.returncode == 0
    assert stdout.startswith(f"SP-API emulator listening on {url} (15 invoices, time scale 60)")
    assert not ready.exists()


def lwa_at(url: str) -> str:
    """Get an access token from an emulator known only by URL."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": TEST_REFRESH_TOKEN,
        "client_id": TEST_CLIENT_ID,
        "client_secret": TEST_CLIENT_SECRET,
    }
    body: dict[str, Any] = json.loads(
        requests.post(url + "/auth/o2/token", data=form, timeout=10).text
    )
    return str(body["access_token"])


def test_the_request_log_masks_the_signatures_of_download_urls(capsys) -> None:
    from sp_api_emulator.server import _RequestHandler

    class Handler(_RequestHandler):
        def __init__(self) -> None:  # no socket: only log_message is called
            self.server = type("S", (), {"emulator": type("E", (), {"log_requests": True})})()
            self.client_address = ("127.0.0.1", 1)

    line = "GET /d/E1.zip?X-Amz-Credential=AKIA1%2F2024&X-Amz-Signature=abc123&X-Amz-Expires=30"
    Handler().log_message('"%s" %s %s', line, "200", "-")
    logged = capsys.readouterr().err
    assert "X-Amz-Credential=****&X-Amz-Signature=****&X-Amz-Expires=30" in logged
    assert "abc123" not in logged and "AKIA1" not in logged
