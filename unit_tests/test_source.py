"""check and discover: clear FAILED statuses, never a stack trace or a secret."""

from __future__ import annotations

import logging

import pytest
import requests
from airbyte_cdk.models import Status
from airbyte_cdk.test.entrypoint_wrapper import discover

from source_sp_invoices import SourceSpInvoices
from unit_tests.conftest import API_URL, LWA_URL

logger = logging.getLogger("test")


def check(config):
    return SourceSpInvoices().check(logger, config)


def test_check_succeeds_when_the_attributes_can_be_read(lwa, requests_mock, config):
    route = requests_mock.get(f"{API_URL}/attributes", json={"invoicesAttributes": {}})
    assert check(config).status == Status.SUCCEEDED
    assert route.call_count == 1


@pytest.mark.parametrize("code", ["invalid_grant", "invalid_client"])
def test_check_fails_when_lwa_rejects_the_credentials(requests_mock, config, code):
    requests_mock.post(LWA_URL, status_code=400, json={"error": code})
    status = check(config)
    assert status.status == Status.FAILED
    assert status.message.startswith(f"Login with Amazon rejected the credentials ({code})")


def test_check_fails_with_the_role_hint_on_403(lwa, requests_mock, config):
    requests_mock.get(
        f"{API_URL}/attributes",
        status_code=403,
        json={
            "errors": [
                {"code": "Unauthorized", "message": "Access to requested resource is denied."}
            ]
        },
        headers={"x-amzn-RequestId": "r-403"},
    )
    status = check(config)
    assert status.status == Status.FAILED
    assert "Tax Invoicing role" in status.message and "r-403" in status.message


def test_check_fails_naming_the_unreachable_sp_api_host(lwa, requests_mock, config):
    requests_mock.get(f"{API_URL}/attributes", exc=requests.ConnectionError("refused"))
    status = check(config)
    assert status.status == Status.FAILED
    host = "sellingpartnerapi-na.amazon.com"
    assert status.message.startswith(
        f"Could not connect to {host}: network error (ConnectionError) talking to"
    )


def test_check_fails_naming_the_unreachable_lwa_host(requests_mock, config):
    requests_mock.post(LWA_URL, exc=requests.ConnectionError("refused"))
    status = check(config)
    assert "could not reach Login with Amazon at api.amazon.com" in status.message


def test_check_fails_naming_the_bad_field(config):
    config["replication_start_date"] = "01/01/2024"
    status = check(config)
    assert status.status == Status.FAILED
    assert "`replication_start_date` must be a UTC date-time" in status.message
    assert "Traceback" not in status.message


def test_discover_lists_the_streams_with_their_sync_modes_and_keys(config):
    catalog = discover(SourceSpInvoices(), config).catalog.catalog
    streams = {s.name: s for s in catalog.streams}
    assert streams["invoice_attributes"].source_defined_primary_key == [["attribute"], ["value"]]
    assert [m.value for m in streams["invoice_attributes"].supported_sync_modes] == ["full_refresh"]
    assert streams["invoices"].source_defined_primary_key == [["id"]]
    assert streams["invoices"].default_cursor_field == ["date"]
    assert {m.value for m in streams["invoices"].supported_sync_modes} == {
        "full_refresh",
        "incremental",
    }


def test_discover_with_a_bad_config_is_a_config_error_naming_the_field(config):
    del config["refresh_token"]
    output = discover(SourceSpInvoices(), config, expecting_exception=True)
    error = output.errors[0].trace.error
    assert error.failure_type.value == "config_error"
    assert "`refresh_token` is missing" in error.message
