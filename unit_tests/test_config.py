"""Config validation: each bad input is one config error naming its field."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airbyte_cdk.models import FailureType
from jsonschema import Draft7Validator

from source_sp_invoices.config import FORMS, ConfigError, load_spec, parse_config
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
    assert parsed.lookback_changed_only  # lookback_exports: changed_days
    assert parsed.filters.query_params() == {}


def test_lookback_exports_every_day_turns_change_detection_off():
    parsed = parse_config(make_config(lookback_exports="every_day"), now=NOW)
    assert not parsed.lookback_changed_only


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
    assert message == (
        "Invalid configuration: `replication_start_date` must be a UTC date-time, "
        "like 2024-01-01T00:00:00Z."
    )


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


@pytest.mark.parametrize(
    ("delivery_method", "files"),
    [
        (None, False),
        ({"delivery_type": "use_records_transfer"}, False),
        ({"delivery_type": "use_file_transfer"}, True),
        # source-s3's form of the option, copied with its own key: the choice is what counts
        ({"delivery_type": "use_file_transfer", "preserve_directory_structure": False}, True),
    ],
)
def test_copy_raw_files_asks_for_the_invoice_files(delivery_method, files):
    parsed = parse_config(make_config(delivery_method=delivery_method), now=NOW)
    assert parsed.copy_raw_files is files
    assert parsed.keep_xml_column is False


def test_the_xml_column_is_kept_with_files_only_when_asked():
    parsed = parse_config(make_config(keep_xml_column=True), now=NOW)
    assert parsed.keep_xml_column is True


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


# Bad values for every optional key of the spec, and the whole problem each must give: the key,
# and the form it takes (a type, a range, the choices, a pattern in words, with an example).
TYPE_OF_SERIES = "`series` must be of type string: 1 to 3 digits, like 1."
DELIVERY_METHOD = (
    "`delivery_method` must be an object whose `delivery_type` is use_records_transfer "
    "(Replicate Records) or use_file_transfer (Copy Raw Files)."
)
BAD_OPTIONAL_VALUES = [
    ("region", "US", "`region` must be one of NA, EU, FE."),
    ("region", 1, "`region` must be one of NA, EU, FE."),  # not also "of type string"
    ("aws_environment", "prod", "`aws_environment` must be one of PRODUCTION, SANDBOX."),
    (
        "marketplace_id",
        7,
        "`marketplace_id` must be of type string: 8 to 20 upper-case letters and digits, "
        "like A2Q3Y263D00KWC.",
    ),
    (
        "marketplace_id",
        "a2q3y263d00kwc",
        "`marketplace_id` must be 8 to 20 upper-case letters and digits, like A2Q3Y263D00KWC.",
    ),
    (
        "replication_end_date",
        "2024-02-01",
        "`replication_end_date` must be a UTC date-time, like 2024-12-31T23:59:59Z.",
    ),
    ("invoices_window_days", 366, "`invoices_window_days` must be between 1 and 365."),
    (
        "invoices_window_days",
        "7",
        "`invoices_window_days` must be of type integer between 1 and 365.",
    ),
    ("documents_window_days", 0, "`documents_window_days` must be between 1 and 366."),
    (
        "documents_window_days",
        1.5,
        "`documents_window_days` must be of type integer between 1 and 366.",
    ),
    ("lookback_days", -1, "`lookback_days` must be between 0 and 90."),
    ("lookback_days", True, "`lookback_days` must be of type integer between 0 and 90."),
    ("parse_nfe", "yes", "`parse_nfe` must be of type boolean: true or false."),
    (
        "stop_sync_on_rate_limit",
        1,
        "`stop_sync_on_rate_limit` must be of type boolean: true or false.",
    ),
    (
        "app_id",
        "amzn1.application-oa2-client.0123",  # the LWA client ID, pasted in the wrong field
        "`app_id` must be amzn1.sp.solution. followed by letters, digits and hyphens, like "
        "amzn1.sp.solution.01234567-89ab-cdef-0123-456789abcdef.",
    ),
    ("invalid_xml", "skip", "`invalid_xml` must be one of emit_with_error, fail_sync."),
    ("lookback_exports", "changed", "`lookback_exports` must be one of changed_days, every_day."),
    ("delivery_method", {"delivery_type": "use_files"}, DELIVERY_METHOD),
    ("delivery_method", {}, DELIVERY_METHOD),  # no delivery_type
    ("delivery_method", "use_file_transfer", DELIVERY_METHOD),  # the type alone, not an object
    ("keep_xml_column", "yes", "`keep_xml_column` must be of type boolean: true or false."),
    (
        "statuses",
        "AUTHORIZED",
        '`statuses` must be of type array, like ["AUTHORIZED", "CANCELED"].',
    ),
    (
        "statuses",
        ["AUTHORIZED", "authorized"],
        '`statuses` item 2 ("authorized") must be upper-case letters and underscores, '
        "like AUTHORIZED.",
    ),
    (
        "statuses",
        ["CANCELED", 7],
        "`statuses` item 2 (7) must be of type string: upper-case letters and underscores, "
        "like AUTHORIZED.",
    ),
    (
        "statuses",
        ["AUTHORIZED", "CANCELED", "AUTHORIZED"],
        "`statuses` lists AUTHORIZED twice: name each value once.",
    ),
    ("invoice_type", ["SHIPMENT"], "`invoice_type` must be of type string, like SYMBOLIC_RETURN."),
    ("transaction_type", 1, "`transaction_type` must be of type string, like CUSTOMER_SALES."),
    ("series", 1, TYPE_OF_SERIES),
    ("series", "1234", "`series` must be 1 to 3 digits, like 1."),
    ("external_invoice_id", 1, "`external_invoice_id` must be of type string."),
    (
        "transaction_identifier_name",
        "SHIPMENT_ID",
        "`transaction_identifier_name` and `transaction_identifier_id` go together: "
        "set both or neither.",
    ),
    (
        "transaction_identifier_id",
        "123",
        "`transaction_identifier_name` and `transaction_identifier_id` go together: "
        "set both or neither.",
    ),
    (
        "api_endpoint",
        "http://sp-api.example.com",
        "`api_endpoint` http://sp-api.example.com uses plain http: use https, so that "
        "credentials are never sent in clear text (http is accepted only for loopback hosts "
        "such as 127.0.0.1).",
    ),
    (
        "lwa_endpoint",
        "ftp://127.0.0.1/token",
        "`lwa_endpoint` ftp://127.0.0.1/token is not an http(s) URL.",
    ),
    # Every other rule of every key (a type, the other end of a range): checked below.
    ("aws_environment", 1, "`aws_environment` must be one of PRODUCTION, SANDBOX."),
    ("invalid_xml", False, "`invalid_xml` must be one of emit_with_error, fail_sync."),
    ("lookback_exports", 1, "`lookback_exports` must be one of changed_days, every_day."),
    ("invoices_window_days", 0, "`invoices_window_days` must be between 1 and 365."),
    ("documents_window_days", 367, "`documents_window_days` must be between 1 and 366."),
    ("lookback_days", 91, "`lookback_days` must be between 0 and 90."),
    (
        "replication_end_date",
        20241231,
        "`replication_end_date` must be of type string: a UTC date-time, "
        "like 2024-12-31T23:59:59Z.",
    ),
    (
        "app_id",
        ["amzn1.sp.solution.0123"],
        "`app_id` must be of type string: amzn1.sp.solution. followed by letters, digits and "
        "hyphens, like amzn1.sp.solution.01234567-89ab-cdef-0123-456789abcdef.",
    ),
    ("transaction_identifier_name", 1, "`transaction_identifier_name` must be of type string."),
    ("transaction_identifier_id", 1, "`transaction_identifier_id` must be of type string."),
    (
        "api_endpoint",
        1,
        "`api_endpoint` must be of type string, like https://sp-api-proxy.example.com.",
    ),
    (
        "lwa_endpoint",
        True,
        "`lwa_endpoint` must be of type string, like https://lwa-proxy.example.com/auth/o2/token.",
    ),
]
# Secrets as lists, never numbers: the CDK masks a secret field's value everywhere in the
# output, and "42" can be part of a message's emitted_at (unit_tests/test_run.py reads it).
BAD_REQUIRED_VALUES = [
    (
        "replication_start_date",
        "01/02/2024",
        "`replication_start_date` must be a UTC date-time, like 2024-01-01T00:00:00Z.",
    ),
    (
        "replication_start_date",
        20240101,
        "`replication_start_date` must be of type string: a UTC date-time, "
        "like 2024-01-01T00:00:00Z.",
    ),
    (
        "replication_start_date",
        None,
        "`replication_start_date` is missing: Start Date is required.",
    ),
    ("lwa_app_id", ["amzn1.application-oa2-client.0123"], "`lwa_app_id` must be of type string."),
    ("lwa_app_id", None, "`lwa_app_id` is missing: LWA Client ID is required."),
    ("lwa_client_secret", ["secret-0123"], "`lwa_client_secret` must be of type string."),
    ("lwa_client_secret", None, "`lwa_client_secret` is missing: LWA Client Secret is required."),
    ("refresh_token", ["Atzr|0123"], "`refresh_token` must be of type string."),
    ("refresh_token", "", "`refresh_token` is empty: paste the value from your SP-API app."),
    ("refresh_token", None, "`refresh_token` is missing: Refresh Token is required."),
]
BAD_VALUES = BAD_OPTIONAL_VALUES + BAD_REQUIRED_VALUES
RULES = ("type", "enum", "minimum", "maximum", "pattern", "uniqueItems", "oneOf")


def test_every_optional_key_of_the_spec_has_a_checked_bad_value():
    spec = load_spec()["connectionSpecification"]
    optional = set(spec["properties"]) - set(spec["required"])
    assert optional == {field for field, _, _ in BAD_OPTIONAL_VALUES}


@pytest.mark.parametrize(("field", "value", "problem"), BAD_REQUIRED_VALUES)
def test_a_bad_required_value_is_one_problem_naming_the_key_and_its_form(field, value, problem):
    assert error_of(**{field: value}) == f"Invalid configuration: {problem}"


@pytest.mark.parametrize(("field", "value", "problem"), BAD_OPTIONAL_VALUES)
def test_a_bad_optional_value_is_one_problem_naming_the_key_and_its_form(field, value, problem):
    assert error_of(**{field: value}) == f"Invalid configuration: {problem}"


def broken_rules(field: str, value: Any) -> set[tuple[str, str]]:
    """The spec's rules (key, rule) a bad value breaks, as jsonschema tells them: `items.x` is
    rule x of a list's items."""
    spec = load_spec()["connectionSpecification"]
    config = make_config(**{field: value})
    return {
        (field, ("items." if len(error.path) > 1 else "") + str(error.validator))
        for error in Draft7Validator(spec).iter_errors(config)
    }


def test_every_rule_of_every_key_of_the_spec_is_broken_by_a_bad_value():
    spec = load_spec()["connectionSpecification"]
    rules = {(key, "required") for key in spec["required"]}
    for key, prop in spec["properties"].items():
        rules |= {(key, rule) for rule in RULES if rule in prop}
        rules |= {(key, f"items.{rule}") for rule in RULES if rule in prop.get("items", {})}
    broken = set().union(*(broken_rules(field, value) for field, value, _ in BAD_VALUES))
    assert rules - broken == set()
    assert len(rules) > 40  # every key has a type, at least


def test_every_pattern_of_the_spec_is_said_in_words():
    properties = load_spec()["connectionSpecification"]["properties"]
    patterned = {
        key for key, prop in properties.items() if "pattern" in {**prop, **prop.get("items", {})}
    }
    assert patterned == set(FORMS)


def test_a_list_with_several_problems_names_each_item_and_repeat():
    message = error_of(statuses=["ISSUED", "issued", "A", "A", "A", 5, "ISSUED"])
    assert message == (
        "Invalid configuration: "
        "`statuses` lists ISSUED twice and A 3 times: name each value once. "
        '`statuses` item 2 ("issued") must be upper-case letters and underscores, '
        "like AUTHORIZED. "
        "`statuses` item 6 (5) must be of type string: upper-case letters and underscores, "
        "like AUTHORIZED."
    )


def test_repeats_are_counted_as_json_schema_counts_them():
    """1 and 1.0 are the same number to uniqueItems; true is not 1."""
    message = error_of(statuses=["ISSUED", 1, 1.0, True])
    type_of = "must be of type string: upper-case letters and underscores, like AUTHORIZED."
    assert message == (
        "Invalid configuration: `statuses` lists 1 twice: name each value once. "
        f"`statuses` item 2 (1) {type_of} `statuses` item 3 (1.0) {type_of} "
        f"`statuses` item 4 (true) {type_of}"
    )


def test_a_long_item_is_shown_cut_short():
    message = error_of(statuses=["x" * 100])
    assert message == (
        'Invalid configuration: `statuses` item 1 ("' + "x" * 38 + "…) must be upper-case "
        "letters and underscores, like AUTHORIZED."
    )


def test_each_bad_value_is_said_once_and_every_bad_key_is_named():
    message = error_of(region=5, series=1, lwa_app_id=None)
    assert message == (
        "Invalid configuration: `lwa_app_id` is missing: LWA Client ID is required. "
        f"`region` must be one of NA, EU, FE. {TYPE_OF_SERIES}"
    )


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
