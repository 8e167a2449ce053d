"""Config validation: each bad input is one config error naming its field."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from airbyte_cdk.models import FailureType

from source_sp_invoices.config import ConfigError, load_spec, parse_config
from unit_tests.conftest import make_config

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def error_of(**overrides) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(make_config(**overrides), now=NOW)
    assert caught.value.failure_type == FailureType.config_error
    return caught.value.message


def test_defaults_select_brazil_on_the_north_america_production_endpoint():
    parsed = parse_config(make_config(replication_end_date=None), now=NOW)
    assert parsed.marketplace_id == "A2Q3Y263D00KWC"
    assert parsed.api_endpoint == "https://sellingpartnerapi-na.amazon.com"
    assert parsed.lwa_endpoint == "https://api.amazon.com/auth/o2/token"
    assert parsed.start == datetime(2024, 1, 1, tzinfo=UTC)
    assert parsed.end is None
    assert parsed.invoices_window == timedelta(days=7)
    assert parsed.lookback == timedelta(days=3)
    assert parsed.filters.query_params() == {}


@pytest.mark.parametrize(
    "region, environment, url",
    [
        ("NA", "SANDBOX", "https://sandbox.sellingpartnerapi-na.amazon.com"),
        ("EU", "PRODUCTION", "https://sellingpartnerapi-eu.amazon.com"),
        ("FE", "SANDBOX", "https://sandbox.sellingpartnerapi-fe.amazon.com"),
    ],
)
def test_region_and_environment_select_the_endpoint(region, environment, url):
    marketplace = {"NA": "A2Q3Y263D00KWC", "EU": "A1PA6795UKMFR9", "FE": "A1VC38T7YXB528"}[region]
    parsed = parse_config(
        make_config(region=region, aws_environment=environment, marketplace_id=marketplace),
        now=NOW,
    )
    assert parsed.api_endpoint == url


@pytest.mark.parametrize("field", ["lwa_app_id", "lwa_client_secret", "refresh_token"])
def test_a_missing_credential_is_named(field):
    message = error_of(**{field: None})
    assert f"`{field}` is missing" in message


@pytest.mark.parametrize("field", ["lwa_app_id", "lwa_client_secret", "refresh_token"])
def test_an_empty_credential_is_named(field):
    assert f"`{field}` is empty" in error_of(**{field: "  "})


@pytest.mark.parametrize(
    "value", ["2024-01-01", "2024-01-01 00:00:00", "2024-01-01T00:00:00+00:00"]
)
def test_a_start_date_in_another_format_is_named(value):
    message = error_of(replication_start_date=value)
    assert "`replication_start_date` must be a UTC date-time like 2024-01-01T00:00:00Z" in message


def test_an_impossible_date_is_named():
    assert "`replication_end_date` 2024-02-30T00:00:00Z is not a real date" in error_of(
        replication_end_date="2024-02-30T00:00:00Z"
    )


def test_an_end_date_before_the_start_date_is_named():
    message = error_of(replication_end_date="2023-12-31T00:00:00Z")
    assert (
        "`replication_end_date` 2023-12-31T00:00:00Z is not after `replication_start_date`"
        in message
    )


def test_a_start_date_in_the_future_is_named():
    message = error_of(replication_start_date="2025-07-01T00:00:00Z", replication_end_date=None)
    assert "`replication_start_date` 2025-07-01T00:00:00Z lies in the future" in message


def test_an_end_date_in_the_future_is_capped_at_now():
    parsed = parse_config(make_config(replication_end_date="2030-01-01T00:00:00Z"), now=NOW)
    assert parsed.end_or_now(NOW) == NOW


def test_a_marketplace_of_another_region_names_its_region():
    message = error_of(marketplace_id="A1PA6795UKMFR9")
    assert "`marketplace_id` A1PA6795UKMFR9 (Germany) belongs to region EU" in message
    assert "not to `region` NA" in message


def test_an_unknown_marketplace_is_accepted_for_new_marketplaces():
    assert parse_config(make_config(marketplace_id="A3NEWMARKET01"), now=NOW).marketplace_id == (
        "A3NEWMARKET01"
    )


@pytest.mark.parametrize("field", ["api_endpoint", "lwa_endpoint"])
def test_plain_http_to_a_remote_host_is_refused(field):
    message = error_of(**{field: "http://sp-api-proxy.example.com"})
    assert f"`{field}` http://sp-api-proxy.example.com uses plain http" in message


@pytest.mark.parametrize("field", ["api_endpoint", "lwa_endpoint"])
def test_an_endpoint_that_is_not_a_url_is_refused(field):
    assert f"`{field}` ftp://example.com is not an http(s) URL" in error_of(
        **{field: "ftp://example.com"}
    )


@pytest.mark.parametrize("host", ["127.0.0.1:8080", "localhost:1234", "[::1]:80", "127.8.9.10"])
def test_plain_http_to_a_loopback_host_is_accepted(host):
    parsed = parse_config(make_config(api_endpoint=f"http://{host}/"), now=NOW)
    assert parsed.api_endpoint == f"http://{host}"


def test_https_overrides_replace_the_endpoints():
    parsed = parse_config(
        make_config(
            api_endpoint="https://proxy.example.com", lwa_endpoint="https://lwa.example.com/t"
        ),
        now=NOW,
    )
    assert (parsed.api_endpoint, parsed.lwa_endpoint) == (
        "https://proxy.example.com",
        "https://lwa.example.com/t",
    )


def test_enums_and_ranges_are_named():
    assert "`region` must be one of NA, EU, FE" in error_of(region="US")
    assert "`aws_environment` must be one of PRODUCTION, SANDBOX" in error_of(
        aws_environment="prod"
    )
    assert "`invoices_window_days` must be between 1 and 365" in error_of(invoices_window_days=0)
    assert "`lookback_days` must be of type integer" in error_of(lookback_days="3")


def test_transaction_identifier_needs_both_parts():
    message = error_of(transaction_identifier_name="SHIPMENT_ID")
    assert "`transaction_identifier_name` and `transaction_identifier_id` go together" in message


def test_filters_become_query_parameters():
    parsed = parse_config(
        make_config(
            statuses=["AUTHORIZED", "CANCELED"],
            invoice_type="SYMBOLIC_RETURN",
            transaction_type="CUSTOMER_SALES",
            series="1",
            transaction_identifier_name="SHIPMENT_ID",
            transaction_identifier_id="S-1",
        ),
        now=NOW,
    )
    assert parsed.filters.query_params() == {
        "statuses": "AUTHORIZED,CANCELED",
        "invoiceType": "SYMBOLIC_RETURN",
        "transactionType": "CUSTOMER_SALES",
        "series": "1",
        "transactionIdentifierName": "SHIPMENT_ID",
        "transactionIdentifierId": "S-1",
    }


def test_secret_values_never_appear_in_messages():
    message = error_of(lwa_client_secret=12345678901, replication_start_date="bad")
    assert "12345678901" not in message
    assert "`lwa_client_secret` must be of type string" in message


def test_several_problems_are_reported_together():
    message = error_of(lwa_app_id=None, region="XX")
    assert "`lwa_app_id` is missing" in message and "`region` must be one of" in message


# One bad value for every optional key of the spec, and the words that must name it.
BAD_OPTIONAL_VALUES = {
    "region": ("US", "`region` must be one of NA, EU, FE"),
    "aws_environment": ("prod", "`aws_environment` must be one of PRODUCTION, SANDBOX"),
    "marketplace_id": (7, "`marketplace_id` must be of type string"),
    "replication_end_date": ("2024-02-01", "`replication_end_date` must be a UTC date-time"),
    "invoices_window_days": (366, "`invoices_window_days` must be between 1 and 365"),
    "documents_window_days": (0, "`documents_window_days` must be between 1 and"),
    "lookback_days": (-1, "`lookback_days` must be between 0 and"),
    "parse_nfe": ("yes", "`parse_nfe` must be of type boolean"),
    "stop_sync_on_rate_limit": (1, "`stop_sync_on_rate_limit` must be of type boolean"),
    "app_id": (
        "amzn1.application-oa2-client.0123",  # the LWA client ID, pasted in the wrong field
        "`app_id` does not have the expected format like amzn1.sp.solution.",
    ),
    "invalid_xml": ("skip", "`invalid_xml` must be one of emit_with_error, fail_sync"),
    "statuses": ("AUTHORIZED", "`statuses` must be of type array"),
    "invoice_type": (["SHIPMENT"], "`invoice_type` must be of type string"),
    "transaction_type": (1, "`transaction_type` must be of type string"),
    "series": (1, "`series` must be of type string"),
    "external_invoice_id": (1, "`external_invoice_id` must be of type string"),
    "transaction_identifier_name": ("SHIPMENT_ID", "set both or neither"),
    "transaction_identifier_id": ("123", "set both or neither"),
    "api_endpoint": ("http://sp-api.example.com", "`api_endpoint` http://sp-api.example.com"),
    "lwa_endpoint": ("ftp://127.0.0.1/token", "`lwa_endpoint` ftp://127.0.0.1/token is not"),
}


def test_every_optional_key_of_the_spec_has_a_checked_bad_value():
    spec = load_spec()["connectionSpecification"]
    optional = set(spec["properties"]) - set(spec["required"])
    assert optional == set(BAD_OPTIONAL_VALUES)


@pytest.mark.parametrize("field", sorted(BAD_OPTIONAL_VALUES))
def test_a_bad_optional_value_is_named(field):
    value, expected = BAD_OPTIONAL_VALUES[field]
    assert expected in error_of(**{field: value})


# --- Airbyte Cloud: public https endpoints only -------------------------------------------------


@pytest.fixture
def cloud(monkeypatch):
    """DEPLOYMENT_MODE=cloud, as Airbyte Cloud sets it; names resolve without DNS."""
    monkeypatch.setenv("DEPLOYMENT_MODE", "cloud")
    names = {"proxy.internal": "10.1.2.3", "sp-api-proxy.example.com": "52.94.236.248"}

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in names:
            raise socket.gaierror(f"unknown host {host}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], 443))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.mark.parametrize("field", ["api_endpoint", "lwa_endpoint"])
@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080", "uses plain http, which Airbyte Cloud does not allow"),
        ("http://sp-api-proxy.example.com", "uses plain http, which Airbyte Cloud does not allow"),
        ("https://127.0.0.1:8443", "points to a loopback address (127.0.0.1)"),
        ("https://localhost", "points to a loopback address (localhost)"),
        ("https://[::1]", "points to a loopback address (::1)"),
        ("https://10.0.0.7", "points to a private network address (10.0.0.7)"),
        ("https://169.254.169.254", "points to a private network address (169.254.169.254)"),
        ("https://proxy.internal", "points to a private network address (10.1.2.3)"),
    ],
)
def test_cloud_refuses_plain_http_and_private_hosts_naming_the_key(cloud, field, url, why):
    message = error_of(**{field: url})
    assert message.startswith("Invalid configuration: ")
    assert f"`{field}` {url} {why}" in message


def test_cloud_accepts_a_public_https_endpoint_and_leaves_unknown_names_to_the_request(cloud):
    parsed = parse_config(
        make_config(
            api_endpoint="https://sp-api-proxy.example.com", lwa_endpoint="https://nowhere.test/t"
        ),
        now=NOW,
    )
    assert parsed.api_endpoint == "https://sp-api-proxy.example.com"
    assert parsed.lwa_endpoint == "https://nowhere.test/t"


def test_oss_keeps_loopback_http_for_the_emulator(monkeypatch):
    monkeypatch.setenv("DEPLOYMENT_MODE", "oss")
    parsed = parse_config(make_config(api_endpoint="http://127.0.0.1:8080"), now=NOW)
    assert parsed.api_endpoint == "http://127.0.0.1:8080"
    assert "uses plain http: use https" in error_of(api_endpoint="http://10.0.0.7")


@pytest.mark.parametrize("field", ["api_endpoint", "lwa_endpoint"])
def test_an_endpoint_with_a_password_is_refused_without_quoting_it(field):
    message = error_of(**{field: "https://proxy-user:s3cr3t-pw@proxy.example.com"})
    assert f"`{field}` must not carry a user name or password" in message
    assert "s3cr3t-pw" not in message and "proxy-user" not in message
