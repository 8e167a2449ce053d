"""Login with Amazon: a refresh token exchanged for an access token sent as x-amz-access-token.

The CDK's Oauth2Authenticator caches and refreshes the token; only how one refresh is requested
is ours, because the CDK's loop has gaps that scripts/measure_lwa.py shows (airbyte-cdk 7.39.1,
a local LWA, 2026-11-26): a token endpoint that accepts the connection and never answers keeps
the CDK's refresh waiting for ever (still waiting after 600 s: it sends no timeout, and its
refresh lock, shared by every authenticator of the process, stalls every stream behind it);
ours gives up after 4 tries of LWA_TIMEOUT, naming the host. A rejected credential is a
config error naming the field to fix (`refresh_token` for invalid_grant, `lwa_app_id` and
`lwa_client_secret` for invalid_client), where the CDK's best setting always blames the refresh
token. What the CDK does alike is not repeated here: caching, expiry, masking the token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import requests
from airbyte_cdk.models import FailureType
from airbyte_cdk.sources.streams.http.requests_native_auth import Oauth2Authenticator
from airbyte_cdk.utils.airbyte_secrets_utils import add_to_secrets
from airbyte_cdk.utils.datetime_helpers import AirbyteDateTime, ab_datetime_now
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from source_sp_invoices import settings
from source_sp_invoices.config import Config
from source_sp_invoices.http.responses import host_and_port

logger = logging.getLogger("airbyte")

# LWA's OAuth error codes that mean the user's credentials are wrong, and which field to fix.
REJECTED_CREDENTIALS = {
    "invalid_grant": "the refresh token is invalid, expired or revoked: check `refresh_token`, "
    "or have the seller authorize the app again",
    "invalid_client": "the client ID or secret is wrong: check `lwa_app_id` and "
    "`lwa_client_secret`",
    "unauthorized_client": "the app is not allowed to use this refresh token: check that "
    "`refresh_token` was issued to the app of `lwa_app_id`",
}
TOKEN_ATTEMPTS = 4


class LwaAuthenticator(Oauth2Authenticator):
    """The CDK's OAuth2 authenticator with Amazon's header, bounded retries and plain errors.

    The CDK caches the token, refreshes it when it expires and once more when the API answers
    REFRESH_TOKEN_THEN_RETRY; this class only changes how one refresh is requested: with a
    timeout, a few retries on network errors and 5xx, and messages that name the bad field.
    """

    def __init__(self, config: Config, session: requests.Session | None = None) -> None:
        super().__init__(
            token_refresh_endpoint=config.lwa_endpoint,
            client_id=config.lwa_app_id,
            client_secret=config.lwa_client_secret,
            refresh_token=config.refresh_token,
        )
        self._session = session or requests.Session()

    def get_auth_header(self) -> Mapping[str, Any]:
        return {"x-amz-access-token": self.get_access_token()}

    def refresh_access_token(self) -> tuple[str, AirbyteDateTime]:
        body = self._request_token()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AirbyteTracedException(
                message="Login with Amazon answered without an access token.",
                internal_message=f"LWA token response keys: {sorted(body)}",
                failure_type=FailureType.system_error,
            )
        add_to_secrets(token)
        lifetime = _as_seconds(body.get("expires_in"))
        margin = min(settings.TOKEN_REFRESH_MARGIN_SECONDS, lifetime / 10)
        return token, ab_datetime_now() + timedelta(seconds=lifetime - margin)

    def _request_token(self) -> Mapping[str, Any]:
        host = host_and_port(self.get_token_refresh_endpoint())
        data = {
            "grant_type": "refresh_token",
            "refresh_token": self.get_refresh_token(),
            "client_id": self.get_client_id(),
            "client_secret": self.get_client_secret(),
        }
        failure = ""
        for attempt in range(1, TOKEN_ATTEMPTS + 1):
            try:
                response = self._session.post(
                    self.get_token_refresh_endpoint(), data=data, timeout=settings.LWA_TIMEOUT
                )
            except requests.RequestException as error:
                failure = f"could not reach Login with Amazon at {host} ({type(error).__name__})"
            else:
                if response.ok:
                    try:
                        return response.json()
                    except ValueError:
                        failure = (
                            f"Login with Amazon at {host} answered with a body that is not JSON"
                        )
                else:
                    code = _oauth_error(response)
                    if code in REJECTED_CREDENTIALS:
                        raise AirbyteTracedException(
                            message=f"Login with Amazon rejected the credentials ({code}): "
                            f"{REJECTED_CREDENTIALS[code]}.",
                            internal_message=f"LWA answered HTTP {response.status_code} {code}",
                            failure_type=FailureType.config_error,
                        )
                    failure = f"Login with Amazon at {host} answered HTTP {response.status_code}"
                    if response.status_code < 500 and response.status_code != 429:
                        raise AirbyteTracedException(
                            message=f"{failure} ({code or 'no error code'}); check `lwa_endpoint`"
                            " and the LWA credentials.",
                            failure_type=FailureType.config_error,
                        )
            if attempt < TOKEN_ATTEMPTS:
                logger.warning(f"Token request failed: {failure}; retrying (attempt {attempt}).")
                time.sleep(2 ** (attempt - 1))
        raise AirbyteTracedException(
            message=f"Could not get an access token: {failure}, after {TOKEN_ATTEMPTS} attempts.",
            failure_type=FailureType.transient_error,
        )


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


def _as_seconds(value: Any) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 3600.0  # LWA's documented lifetime
    return seconds if seconds > 0 else 3600.0
