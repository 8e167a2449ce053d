"""The invoice_attributes and invoices streams through the CDK entrypoint, with mocked HTTP."""

from __future__ import annotations

import re
from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from airbyte_cdk.models import SyncMode
from airbyte_cdk.test.catalog_builder import CatalogBuilder
from airbyte_cdk.test.entrypoint_wrapper import read
from airbyte_cdk.test.state_builder import StateBuilder

from conftest import validate_records
from source_sp_invoices import SourceSpInvoices, settings
from source_sp_invoices.export_pipeline.invoice_counts import InvoiceCounts
from unit_tests.conftest import API_URL

ATTRIBUTES = {
    "invoicesAttributes": {
        "invoiceStatusOptions": [
            {"value": "AUTHORIZED", "description": "The government authorized the invoice."},
            {"value": "CANCELED", "description": "The invoice is canceled."},
        ],
        "invoiceTypeOptions": [{"value": "SHIPMENT", "description": "Shipment invoice."}],
        "transactionIdentifierNameOptions": [],
        "transactionTypeOptions": [{"value": "CUSTOMER_SALES", "description": "Sales."}],
    }
}


def unauthorized(details: str) -> dict[str, Any]:
    """Amazon's 403 body: details say whether the access token expired."""
    return {
        "errors": [
            {
                "code": "Unauthorized",
                "message": "Access to requested resource is denied.",
                "details": details,
            }
        ]
    }


def invoice(number: int, date: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"inv-{number}",
        "date": date,
        "status": "AUTHORIZED",
        "invoiceType": "SHIPMENT",
        "transactionType": "CUSTOMER_SALES",
        "series": "1",
        "externalInvoiceId": str(1000 + number),
        "errorCode": "",
        "govResponse": "",
        "transactionIds": [{"name": "SHIPMENT_ID", "id": f"S{number}"}],
        **fields,
    }


def catalog(stream: str, mode: SyncMode = SyncMode.full_refresh):
    return CatalogBuilder().with_stream(stream, mode).build()


def query(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def records_of(output, stream: str) -> list[dict[str, Any]]:
    records = [m.record.data for m in output.records if m.record.stream == stream]
    validate_records(stream, records)
    return records


def states_of(output) -> list[dict[str, Any]]:
    return [m.state.stream.stream_state.__dict__ for m in output.state_messages]


def test_attributes_become_one_record_per_option(lwa, requests_mock, config):
    route = requests_mock.get(f"{API_URL}/attributes", json=ATTRIBUTES)
    output = read(SourceSpInvoices(), config, catalog("invoice_attributes"))
    assert records_of(output, "invoice_attributes") == [
        {
            "attribute": "invoiceStatus",
            "value": "AUTHORIZED",
            "description": "The government authorized the invoice.",
        },
        {
            "attribute": "invoiceStatus",
            "value": "CANCELED",
            "description": "The invoice is canceled.",
        },
        {"attribute": "invoiceType", "value": "SHIPMENT", "description": "Shipment invoice."},
        {"attribute": "transactionType", "value": "CUSTOMER_SALES", "description": "Sales."},
    ]
    request = route.last_request
    assert query(request) == {"marketplaceId": "A2Q3Y263D00KWC"}
    assert request.headers["x-amz-access-token"] == "Atza|unit-test-access-token"
    assert "Authorization" not in request.headers


def test_invoices_read_every_page_of_every_window_and_save_state_per_window(
    lwa, requests_mock, config
):
    # 2024-01-01 .. 2024-01-15 in 7-day windows, [01, 08) and [08, 10), then the last five days
    # (the lookback of the next sync and two more) slot by slot: [10T00, 10T03), [10T03, 11T00)...
    pages = {
        "2024-01-01T00:00:00Z": [
            {"json": {"invoices": [invoice(1, "2024-01-01T00:00:00.000Z")], "nextToken": "p2"}},
            {"json": {"invoices": [invoice(2, "2024-01-07T23:59:59.999Z")]}},
        ],
        "2024-01-08T00:00:00Z": [{"json": {"invoices": [invoice(3, "2024-01-08T00:00:00Z")]}}],
        "2024-01-14T03:00:00Z": [{"json": {"invoices": [invoice(4, "2024-01-14T10:00:00Z")]}}],
    }

    def answer(request, context):
        asked = query(request)
        if "nextToken" in asked:
            return pages["2024-01-01T00:00:00Z"][1]["json"]
        return (pages.get(asked["dateStart"]) or [{"json": {"invoices": []}}])[0]["json"]

    route = requests_mock.get(f"{API_URL}/invoices", json=answer)
    output = read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental))
    assert [r["id"] for r in records_of(output, "invoices")] == ["inv-1", "inv-2", "inv-3", "inv-4"]
    first, second, *rest = (query(r) for r in route.request_history)
    assert first == {
        "marketplaceId": "A2Q3Y263D00KWC",
        "dateStart": "2024-01-01T00:00:00Z",
        "dateEnd": "2024-01-08T00:00:00Z",
        "pageSize": "200",
        "sortBy": "START_DATE_TIME",
        "sortOrder": "ASC",
    }
    assert second == {"marketplaceId": "A2Q3Y263D00KWC", "nextToken": "p2"}
    windows = [(q["dateStart"], q["dateEnd"]) for q in rest]
    assert windows[:3] == [
        ("2024-01-08T00:00:00Z", "2024-01-10T00:00:00Z"),
        ("2024-01-10T00:00:00Z", "2024-01-10T03:00:00Z"),
        ("2024-01-10T03:00:00Z", "2024-01-11T00:00:00Z"),
    ]
    assert len(windows) == 1 + 2 * 5 and windows[-1][1] == "2024-01-15T00:00:00Z"
    states = states_of(output)
    assert states[0] == {"date": "2024-01-08T00:00:00Z", "resume_from": "2024-01-08T00:00:00Z"}
    assert len(states) == 12 and states[-1]["date"] == "2024-01-15T00:00:00Z"
    assert "resume_from" not in states[-1]
    # What the next sync looks back at (from 2024-01-12T00), slot by slot.
    delivered = states[-1]["delivered"]
    assert sorted(delivered) == [f"2024-01-{d}T{h}" for d in (12, 13, 14) for h in ("00", "03")]
    assert delivered["2024-01-14T03"]["invoices"] == 1
    assert {v["invoices"] for k, v in delivered.items() if k != "2024-01-14T03"} == {0}


@pytest.mark.parametrize(
    ("stream", "path", "key", "record"),
    [
        ("invoices", "invoices", "invoices", invoice(1, "2024-01-02T00:00:00Z")),
        ("invoice_exports", "exports", "exports", {"exportId": "E1", "status": "REQUESTED"}),
    ],
)
def test_empty_pages_with_a_next_token_are_followed(
    lwa, requests_mock, config, stream, path, key, record
):
    """The model: "Note that this operation can return empty pages." Paging goes on while a
    nextToken comes, whatever a page holds (the emulator never sends an empty page)."""
    config.update(replication_end_date="2024-01-08T00:00:00Z")  # one invoices window
    route = requests_mock.get(
        f"{API_URL}/{path}",
        [
            {"json": {key: [], "nextToken": "page-2"}},
            {"json": {key: [], "nextToken": "page-3"}},
            {"json": {key: [record]}},
        ],
    )
    output = read(SourceSpInvoices(), config, catalog(stream))
    assert not output.errors
    assert records_of(output, stream) == [record]
    assert [query(r).get("nextToken") for r in route.request_history] == [None, "page-2", "page-3"]


def test_every_invoice_amazon_returns_is_emitted_whatever_its_date(lwa, requests_mock, config):
    # getInvoices filters on the creation date: a record's `date` can lie outside the window
    # asked for. Each window of 7 days answers with an invoice dated in the other window.
    def answer(request, context):
        start = request.qs["datestart"][0].upper()
        other = (
            "2024-01-09T10:00:00.000Z"
            if start.startswith("2024-01-01")
            else "2024-01-07T23:00:00.000Z"
        )
        return {"invoices": [invoice(1 if start.startswith("2024-01-01") else 2, other)]}

    requests_mock.get(f"{API_URL}/invoices", json=answer)
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    assert sorted(r["id"] for r in records_of(output, "invoices")) == ["inv-1", "inv-2"]


def test_filters_are_sent_with_the_first_page_only(lwa, requests_mock, config):
    config.update(
        statuses=["CANCELED"], invoice_type="SHIPMENT", series="2", invoices_window_days=30
    )
    route = requests_mock.get(
        f"{API_URL}/invoices",
        [{"json": {"invoices": [], "nextToken": "t"}}, {"json": {"invoices": []}}],
    )
    read(SourceSpInvoices(), config, catalog("invoices"))
    first, second = (query(r) for r in route.request_history)
    assert (first["statuses"], first["invoiceType"], first["series"]) == (
        "CANCELED",
        "SHIPMENT",
        "2",
    )
    assert second == {"marketplaceId": "A2Q3Y263D00KWC", "nextToken": "t"}


def window_starts(route) -> list[str]:
    return [query(r)["dateStart"] for r in route.request_history]


def test_incremental_reads_from_the_cursor_minus_the_lookback(lwa, requests_mock, config):
    config.update(invoices_window_days=1, lookback_days=2)
    route = requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    state = StateBuilder().with_stream_state("invoices", {"date": "2024-01-12T05:00:00Z"}).build()
    output = read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental), state)
    # From the start of the slot of 2024-01-10T05:00, slot by slot (the last four days are).
    starts = window_starts(route)
    assert starts[:3] == ["2024-01-10T03:00:00Z", "2024-01-11T00:00:00Z", "2024-01-11T03:00:00Z"]
    assert starts[-1] == "2024-01-14T03:00:00Z" and len(starts) == 1 + 2 * 4
    assert states_of(output)[-1]["date"] == "2024-01-15T00:00:00Z"


def test_with_every_day_the_lookback_starts_at_the_cursor_less_the_lookback_itself(
    lwa, requests_mock, config
):
    config.update(invoices_window_days=1, lookback_days=2, lookback_exports="every_day")
    route = requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    state = StateBuilder().with_stream_state("invoices", {"date": "2024-01-12T00:00:00Z"}).build()
    output = read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental), state)
    assert window_starts(route) == [f"2024-01-{d:02d}T00:00:00Z" for d in range(10, 15)]
    assert states_of(output)[-1] == {"date": "2024-01-15T00:00:00Z"}


def test_an_interrupted_sync_resumes_at_its_first_unfinished_window(lwa, requests_mock, config):
    config.update(invoices_window_days=1, lookback_days=2, lookback_exports="every_day")
    route = requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    saved = {"date": "2024-01-12T00:00:00Z", "resume_from": "2024-01-13T00:00:00Z"}
    state = StateBuilder().with_stream_state("invoices", saved).build()
    read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental), state)
    assert window_starts(route) == ["2024-01-13T00:00:00Z", "2024-01-14T00:00:00Z"]


def test_the_cursor_never_moves_backwards_during_the_lookback(lwa, requests_mock, config):
    config.update(
        invoices_window_days=1, lookback_days=3, replication_end_date="2024-01-13T00:00:00Z"
    )
    requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    state = StateBuilder().with_stream_state("invoices", {"date": "2024-01-13T00:00:00Z"}).build()
    output = read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental), state)
    assert [s["date"] for s in states_of(output)] == ["2024-01-13T00:00:00Z"] * 6


def test_full_refresh_ignores_the_state(lwa, requests_mock, config):
    route = requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    state = StateBuilder().with_stream_state("invoices", {"date": "2024-01-12T00:00:00Z"}).build()
    read(SourceSpInvoices(), config, catalog("invoices"), state)
    assert window_starts(route) == ["2024-01-01T00:00:00Z", "2024-01-08T00:00:00Z"]


def test_an_unreadable_state_fails_clearly_instead_of_starting_over(lwa, requests_mock, config):
    route = requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    state = StateBuilder().with_stream_state("invoices", {"date": "yesterday"}).build()
    output = read(SourceSpInvoices(), config, catalog("invoices", SyncMode.incremental), state)
    assert route.call_count == 0
    assert "has date='yesterday', which is not a date-time" in output.errors[0].trace.error.message


def test_429_waits_and_retries(lwa, requests_mock, config):
    config["invoices_window_days"] = 30
    quota = {"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]}
    route = requests_mock.get(
        f"{API_URL}/invoices",
        [
            {"status_code": 429, "json": quota, "headers": {"x-amzn-RateLimit-Limit": "0.5"}},
            {"json": {"invoices": [invoice(1, "2024-01-02T00:00:00Z")]}},
        ],
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    assert len(records_of(output, "invoices")) == 1 and route.call_count == 2
    assert output.is_in_logs("Amazon applies 0.5 requests/s to getInvoices")


def test_server_errors_and_dropped_connections_are_retried(lwa, requests_mock, config):
    import requests

    config["invoices_window_days"] = 30
    route = requests_mock.get(
        f"{API_URL}/invoices",
        [
            {
                "status_code": 503,
                "json": {"errors": [{"code": "ServiceUnavailable", "message": "x"}]},
            },
            {"exc": requests.ConnectionError("reset by peer")},
            {"status_code": 500, "text": "oops"},
            {"json": {"invoices": [invoice(1, "2024-01-02T00:00:00Z")]}},
        ],
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    assert len(records_of(output, "invoices")) == 1 and route.call_count == 4


def test_a_400_fails_with_amazons_message_and_the_request_id(lwa, requests_mock, config):
    requests_mock.get(
        f"{API_URL}/invoices",
        status_code=400,
        json={
            "errors": [{"code": "InvalidInput", "message": "Invalid dateStart.", "details": "bad"}]
        },
        headers={"x-amzn-RequestId": "req-123"},
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    message = output.errors[0].trace.error.message
    assert "Amazon rejected getInvoices: InvalidInput: Invalid dateStart. (bad)" in message
    assert "x-amzn-RequestId req-123" in message
    assert not output.records


def test_an_expired_token_is_refreshed_once_and_the_call_retried(lwa, requests_mock, config):
    config["invoices_window_days"] = 30
    expired = unauthorized("The access token you provided has expired.")
    requests_mock.get(
        f"{API_URL}/invoices",
        [{"status_code": 403, "json": expired}, {"json": {"invoices": []}}],
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    assert not output.errors
    assert lwa.call_count == 2


def test_a_403_without_expiry_is_a_config_error_about_the_role(lwa, requests_mock, config):
    denied = unauthorized("")
    requests_mock.get(f"{API_URL}/attributes", status_code=403, json=denied)
    output = read(SourceSpInvoices(), config, catalog("invoice_attributes"))
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "Tax Invoicing role" in error.message and "Unauthorized" in error.message


def test_no_secret_reaches_the_output(lwa, requests_mock, config, capfd):
    requests_mock.get(f"{API_URL}/invoices", json={"invoices": []})
    output = read(SourceSpInvoices(), config, catalog("invoices"), debug=True)
    printed = capfd.readouterr().out + "\n".join(map(str, output._messages))
    assert "'x-amz-access-token': '****'" in printed  # the debug log of each request was seen
    for secret in (
        "unit-test-client-secret-0123",
        "Atzr|unit-test-refresh-token-0123",
        "Atza|unit-test-access-token",
    ):
        assert secret not in printed


def test_a_body_that_is_not_json_is_asked_again(lwa, requests_mock, config):
    config["invoices_window_days"] = 30
    route = requests_mock.get(
        f"{API_URL}/invoices",
        [
            {"status_code": 200, "text": "<html>proxy error</html>"},
            {"status_code": 200, "text": '{"invoices": [{"id": "inv-1", "da'},
            {"json": {"invoices": [invoice(1, "2024-01-02T00:00:00Z")]}},
        ],
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    assert [r["id"] for r in records_of(output, "invoices")] == ["inv-1"]
    assert route.call_count == 3


def test_a_body_that_stays_unreadable_fails_saying_so(lwa, requests_mock, config):
    requests_mock.get(
        f"{API_URL}/invoices", text="<html>proxy error</html>", headers={"x-amzn-RequestId": "r9"}
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"))
    message = output.errors[0].trace.error.message
    assert "a body that is not JSON" in message and "r9" in message


def test_server_errors_that_never_end_fail_quoting_amazon_and_the_request_id(
    lwa, requests_mock, config, no_retry_waits
):
    route = requests_mock.get(
        f"{API_URL}/invoices",
        status_code=503,
        json={"errors": [{"code": "ServiceUnavailable", "message": "Try later."}]},
        headers={"x-amzn-RequestId": "req-503"},
    )
    output = read(SourceSpInvoices(), config, catalog("invoices"), expecting_exception=True)
    message = output.errors[0].trace.error.message
    assert "getInvoices answered HTTP 503: ServiceUnavailable: Try later." in message
    assert "x-amzn-RequestId req-503" in message
    # each retry (every call but the last) is logged naming the request
    retried = [
        m.log.message
        for m in output.logs
        if m.log.message.startswith("Caught retryable error")
        and "x-amzn-RequestId req-503" in m.log.message
    ]
    assert len(retried) == route.call_count - 1 == settings.MAX_RETRIES


def test_a_request_that_always_times_out_fails_naming_the_host(
    lwa, requests_mock, config, no_retry_waits
):
    import requests

    def time_out(request, context):  # as requests raises it: the request attached
        raise requests.ReadTimeout("read timed out", request=request)

    route = requests_mock.get(f"{API_URL}/invoices", json=time_out)
    output = read(SourceSpInvoices(), config, catalog("invoices"), expecting_exception=True)
    message = output.errors[0].trace.error.message
    assert "network error (ReadTimeout)" in message and "sellingpartnerapi-na.amazon.com" in message
    assert route.call_count == 9  # the first try and eight retries: never forever
    assert not output.records


@pytest.mark.parametrize(
    ("stream", "state", "unknown"),
    [
        ("invoices", {"cursor": "2024-01-12T00:00:00Z"}, "cursor"),  # another version's key
        ("invoices", {"date": "2024-01-12T00:00:00Z", "Date": "x"}, "Date"),  # edited by hand
        ("invoice_exports", {"updatedAt": "2024-01-12T00:00:00Z"}, "updatedAt"),
        ("invoice_documents", {"date_end": "2024-01-12"}, "date_end"),
    ],
)
def test_a_state_of_another_version_is_refused_naming_its_keys(
    lwa, requests_mock, config, stream, state, unknown
):
    route = requests_mock.get(re.compile(f"{API_URL}/"), json={})
    saved = StateBuilder().with_stream_state(stream, state).build()
    output = read(SourceSpInvoices(), config, catalog(stream, SyncMode.incremental), saved)
    message = output.errors[0].trace.error.message
    assert f"The saved state of stream `{stream}` has the key(s) {unknown}," in message
    assert "not replaced by the start date silently" in message
    assert route.call_count == 0 and not output.records


@pytest.mark.parametrize(
    ("stop_sync_on_rate_limit", "failure_type", "ending"),
    [
        (
            False,
            "transient_error",
            "Airbyte retries the sync later; it resumes from its saved state.",
        ),
        # Airbyte does not retry a config error: the operator stops the other client first.
        (True, "config_error", "(`stop_sync_on_rate_limit` is on)"),
    ],
)
def test_429s_that_never_end_fail_quoting_amazon_and_the_request_id(
    lwa, requests_mock, config, no_retry_waits, stop_sync_on_rate_limit, failure_type, ending
):
    route = requests_mock.get(
        f"{API_URL}/invoices",
        status_code=429,
        json={"errors": [{"code": "QuotaExceeded", "message": "You exceeded your quota."}]},
        headers={"x-amzn-RequestId": "req-429", "x-amzn-RateLimit-Limit": "1000"},
    )
    config = {**config, "stop_sync_on_rate_limit": stop_sync_on_rate_limit}
    output = read(SourceSpInvoices(), config, catalog("invoices"), expecting_exception=True)
    error = output.errors[0].trace.error
    assert "Amazon kept answering 429 (too many requests) to getInvoices" in error.message
    assert "QuotaExceeded: You exceeded your quota. [HTTP 429, x-amzn-RequestId req-429]" in (
        error.message
    )
    assert error.failure_type.value == failure_type
    assert ending in error.message and error.message.endswith("it resumes from its saved state.")
    # the first try and eight retries, with the option or without: only the verdict differs
    assert route.call_count == 9


def test_an_access_token_refused_again_after_its_refresh_fails_with_an_auth_error(
    lwa, requests_mock, config, no_retry_waits
):
    expired = unauthorized("The access token you provided has expired.")
    requests_mock.get(f"{API_URL}/invoices", status_code=403, json=expired)
    output = read(SourceSpInvoices(), config, catalog("invoices"), expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.message.startswith(
        "Amazon refused the access token again right after it was refreshed: getInvoices: "
        "Unauthorized: Access to requested resource is denied."
    )
    assert "(The access token you provided has expired.) [HTTP 403, x-amzn-RequestId" in (
        error.message
    )
    assert error.failure_type.value == "config_error"
    assert lwa.call_count <= 10  # refreshed a bounded number of times, never forever
    assert not output.records


def same_arguments_api(requests_mock, path: str, key: str, refused: list[int]):
    """An API that follows the nextToken description: later pages need the same arguments."""

    def answer(request, context):
        if "nexttoken" in request.qs and "datestart" not in request.qs:
            refused.append(400)
            context.status_code = 400
            return {"errors": [{"code": "InvalidInput", "message": "Missing dateStart."}]}
        if "nexttoken" in request.qs:
            return {key: []}
        return {key: [], "nextToken": "page-2"}

    return requests_mock.get(f"{API_URL}/{path}", json=answer)


@pytest.mark.parametrize(
    ("stream", "path", "key"),
    [("invoices", "invoices", "invoices"), ("invoice_exports", "exports", "exports")],
)
def test_later_pages_switch_to_the_first_pages_arguments_once_amazon_asks(
    lwa, requests_mock, config, stream, path, key
):
    config.update(invoices_window_days=7)
    refused: list[int] = []
    route = same_arguments_api(requests_mock, path, key, refused)
    output = read(SourceSpInvoices(), config, catalog(stream))
    assert not output.errors
    queries = [query(r) for r in route.request_history]
    # window 1: first page, token alone (refused), token with arguments; later windows: no 400
    assert "dateStart" not in queries[1] and "nextToken" in queries[1]
    assert (
        queries[2]["nextToken"] == "page-2" and queries[2]["dateStart"] == queries[0]["dateStart"]
    )
    later = [q for q in queries[3:] if "nextToken" in q]
    assert all("dateStart" in q for q in later)  # kept for the rest of the sync
    assert len(later) >= (1 if stream == "invoices" else 0)  # invoices has a second window
    assert len(refused) == 1
    switched = [m.log.message for m in output.logs if "refused a later page" in m.log.message]
    assert len([m for m in switched if "from now on" in m]) == 1


def test_a_later_page_refused_under_both_readings_fails_quoting_amazon(lwa, requests_mock, config):
    refused: list[int] = []

    def answer(request, context):
        if "nexttoken" in request.qs:
            refused.append(400)
            context.status_code = 400
            return {"errors": [{"code": "InvalidInput", "message": "Bad token."}]}
        return {"invoices": [], "nextToken": "page-2"}

    requests_mock.get(f"{API_URL}/invoices", json=answer)
    output = read(SourceSpInvoices(), config, catalog("invoices"), expecting_exception=True)
    message = output.errors[0].trace.error.message
    assert "both alone and with the first page's arguments" in message and "Bad token." in message
    assert len(refused) == 2  # one switch, never a loop


def invoices_counting(config) -> tuple[Any, Any]:
    """The source's invoices stream, counting each day's invoices for the export plan."""
    stream = next(s for s in SourceSpInvoices().streams(config) if s.name == "invoices")
    stream.counts = InvoiceCounts()
    return stream, stream.counts


def test_the_invoices_of_each_day_are_counted_from_the_pages_as_they_pass(
    lwa, requests_mock, config
):
    """Pages come in ascending order: a day is known once a later day's invoice shows, before
    the window ends; an invoice at the window's end instant is the next window's (bounds are
    inclusive), so it is not counted twice."""
    requests_mock.get(
        f"{API_URL}/invoices",
        [
            {
                "json": {
                    "invoices": [
                        invoice(1, "2024-01-01T10:00:00Z"),
                        invoice(2, "2024-01-01T23:00:00.500Z"),
                        invoice(3, "2024-01-03T08:00:00Z"),
                    ],
                    "nextToken": "page-2",
                }
            },
            {"json": {"invoices": [invoice(4, "2024-01-04T00:00:00Z")]}},
        ],
    )
    stream, counts = invoices_counting(config)
    window = {"dateStart": "2024-01-01T00:00:00Z", "dateEnd": "2024-01-04T00:00:00Z"}
    records = stream.window_records(window)
    for _ in range(3):  # the first page
        next(records)
    assert counts.known(date(2024, 1, 1), date(2024, 1, 3)) == [2, 0]  # the 3rd still open
    assert [r["id"] for r in records] == ["inv-4"]  # the second page: the end instant
    assert counts.known(date(2024, 1, 1), date(2024, 1, 4)) == [2, 0, 1]


def test_a_failing_invoices_stream_leaves_its_days_to_the_counting_listing(
    lwa, requests_mock, config
):
    requests_mock.get(
        f"{API_URL}/invoices",
        status_code=400,
        json={"errors": [{"code": "InvalidInput", "message": "bad", "details": ""}]},
    )
    stream, counts = invoices_counting(config)
    counts.plan_listing(*stream.planned_range(SyncMode.full_refresh))
    window = {"dateStart": "2024-01-01T00:00:00Z", "dateEnd": "2024-01-08T00:00:00Z"}
    with pytest.raises(Exception, match="bad"):
        list(stream.read_records(SyncMode.full_refresh, stream_slice={**window, "window": "1/1"}))
    assert counts.planned() is None  # what it planned to list is no longer its own
