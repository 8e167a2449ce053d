"""LWA: token exchange, caching, refresh, the header, and plain errors for bad credentials."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets
from airbyte_cdk.utils.datetime_helpers import ab_datetime_now
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.config import parse_config
from source_sp_invoices.http import auth
from source_sp_invoices.http.auth import LwaAuthenticator
from unit_tests.conftest import LWA_URL, make_config


@pytest.fixture
def authenticator() -> LwaAuthenticator:
    return LwaAuthenticator(parse_config(make_config()))


def test_the_refresh_token_is_exchanged_once_and_sent_as_x_amz_access_token(lwa, authenticator):
    assert authenticator.get_auth_header() == {"x-amz-access-token": "Atza|unit-test-access-token"}
    assert authenticator.get_auth_header() == {"x-amz-access-token": "Atza|unit-test-access-token"}
    assert lwa.call_count == 1
    sent = dict(pair.split("=") for pair in lwa.last_request.text.split("&"))
    assert sent["grant_type"] == "refresh_token"
    assert sent["client_id"] == "amzn1.application-oa2-client.unit-test-client"
    assert sent["client_secret"] == "unit-test-client-secret-0123"
    assert requests.utils.unquote(sent["refresh_token"]) == "Atzr|unit-test-refresh-token-0123"


def test_the_token_is_refreshed_shortly_before_it_expires(lwa, authenticator):
    authenticator.get_access_token()
    expiry = authenticator.get_token_expiry_date()
    assert timedelta(minutes=58) < expiry - ab_datetime_now() <= timedelta(minutes=59)
    authenticator.set_token_expiry_date(ab_datetime_now() - timedelta(seconds=1))
    authenticator.get_access_token()
    assert lwa.call_count == 2


def test_the_access_token_is_registered_as_a_secret(lwa, authenticator):
    authenticator.get_access_token()
    assert "Atza|unit-test-access-token" not in filter_secrets("token Atza|unit-test-access-token")


@pytest.mark.parametrize(
    "status, code, field",
    [
        (400, "invalid_grant", "`refresh_token`"),
        (401, "invalid_client", "`lwa_app_id` and `lwa_client_secret`"),
        (400, "unauthorized_client", "`refresh_token`"),
    ],
)
def test_rejected_credentials_are_a_config_error_naming_the_field(
    requests_mock, authenticator, status, code, field
):
    requests_mock.post(LWA_URL, status_code=status, json={"error": code, "error_description": "x"})
    with pytest.raises(AirbyteTracedException) as caught:
        authenticator.get_access_token()
    assert caught.value.failure_type == FailureType.config_error
    assert caught.value.message.startswith(f"Login with Amazon rejected the credentials ({code})")
    assert field in caught.value.message
    assert requests_mock.call_count == 1  # wrong credentials are never retried


def test_server_errors_are_retried(requests_mock, authenticator):
    requests_mock.post(
        LWA_URL,
        [
            {"status_code": 503, "text": "busy"},
            {"exc": requests.ConnectionError("reset")},
            {"json": {"access_token": "Atza|late-token", "expires_in": 3600}},
        ],
    )
    assert authenticator.get_access_token() == "Atza|late-token"
    assert requests_mock.call_count == 3


def test_an_unreachable_endpoint_fails_naming_the_host_after_bounded_attempts(
    requests_mock, authenticator
):
    requests_mock.post(LWA_URL, exc=requests.ConnectTimeout("timed out"))
    with pytest.raises(AirbyteTracedException) as caught:
        authenticator.get_access_token()
    assert "could not reach Login with Amazon at api.amazon.com" in caught.value.message
    assert caught.value.failure_type == FailureType.transient_error
    assert requests_mock.call_count == auth.TOKEN_ATTEMPTS


def test_every_token_request_has_a_timeout_of_its_own(lwa, authenticator):
    """The CDK's refresh sends none, and waits for ever on a silent endpoint (auth.py)."""
    authenticator.get_access_token()
    assert lwa.last_request.timeout == settings.LWA_TIMEOUT
    connect, read = settings.LWA_TIMEOUT
    assert connect > 0 and 0 < read <= 30  # four tries give up within about two minutes


def test_a_token_response_without_a_token_is_a_clear_error(requests_mock, authenticator):
    requests_mock.post(LWA_URL, json={"token_type": "bearer"})
    with pytest.raises(AirbyteTracedException, match="without an access token"):
        authenticator.get_access_token()


def test_an_unexpected_client_error_points_at_the_endpoint(requests_mock, authenticator):
    requests_mock.post(LWA_URL, status_code=404, text="not here")
    with pytest.raises(AirbyteTracedException) as caught:
        authenticator.get_access_token()
    assert "answered HTTP 404" in caught.value.message and "`lwa_endpoint`" in caught.value.message
    assert caught.value.failure_type == FailureType.config_error


def test_messages_name_the_token_host_never_its_user_or_password(requests_mock):
    from source_sp_invoices.http.responses import host_and_port

    assert host_and_port("https://u:pw@lwa.example.com:8443/t") == "lwa.example.com:8443"
    assert host_and_port("http://[::1]:9/t") == "[::1]:9"
    assert host_and_port("https://api.amazon.com/auth/o2/token") == "api.amazon.com"
