"""Authorizing in the Airbyte UI: the platform's declarative OAuth flow, walked step by step from
the spec's `advanced_auth`, against the emulator standing in for Seller Central and LWA.

What the platform does (Airbyte's DeclarativeOAuthFlow): it renders `consent_url` with the
user's inputs, a random `state` and its own redirect URI, sends the user there, receives the
redirect with the `state` and the code under `auth_code_key`, posts `access_token_params` to
`access_token_url` with `access_token_headers`, and merges the `extract_output` keys of the answer
into the config at the paths of `complete_oauth_output_specification` (the client ID and secret
at those of `complete_oauth_server_output_specification`).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests

from integration_tests.conftest import START, parse_messages
from sp_api_emulator import EmulatorServer, ManualClock
from sp_api_emulator.lwa import TEST_APPLICATION_ID

PLATFORM_REDIRECT = "https://airbyte.example.com/auth_flow"  # never contacted: only compared
PLACEHOLDER = re.compile(r"\{\{\s*(\{\{\s*(\w+)\s*\}\}|\w+)\s*(?:\|\s*(\w+)\s*)?\}\}")


def render(template: str, values: dict[str, str]) -> str:
    """Airbyte's interpolation: {{name}}, and {{ {{name}} | urlEncoder }} for a nested value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(2) or match.group(1)
        text = values[name]
        if match.group(3) == "urlEncoder":
            return quote(text, safe="")
        assert match.group(3) is None, f"unknown filter {match.group(3)}"
        return text

    return PLACEHOLDER.sub(value, template)


def set_path(config: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        config = config.setdefault(key, {})
    config[path[-1]] = value


def on_emulator(url: str, emulator: EmulatorServer) -> str:
    """The same path and query on the emulator, which stands in for Amazon's hosts."""
    parts = urlsplit(url)
    return emulator.url + parts.path + (f"?{parts.query}" if parts.query else "")


def spec(cli) -> dict[str, Any]:
    run = cli.run("spec")
    (message,) = [m for m in parse_messages(run.stdout) if m["type"] == "SPEC"]
    return message["spec"]


def authorize(cli, emulator: EmulatorServer, user_config: dict[str, Any]) -> dict[str, Any]:
    """The platform's flow; returns the config it saves for the source."""
    oauth = spec(cli)["advanced_auth"]["oauth_config_specification"]
    flow = oauth["oauth_connector_input_specification"]
    values = {
        name: user_config[field["path_in_connector_config"][0]]
        for name, field in oauth["oauth_user_input_from_connector_config_specification"][
            "properties"
        ].items()
    }
    state = secrets.token_urlsafe(flow["state"]["max"])[: flow["state"]["max"]]
    assert flow["state"]["min"] <= len(state)
    server_inputs = {
        "client_id": emulator.credentials.client_id,
        "client_secret": emulator.credentials.client_secret,
    }
    values.update(
        state_key="state",
        state_value=state,
        redirect_uri_key="redirect_uri",
        redirect_uri_value=PLATFORM_REDIRECT,
        client_id_key="client_id",
        client_id_value=server_inputs["client_id"],
        client_secret_key="client_secret",
        client_secret_value=server_inputs["client_secret"],
    )

    consent = render(flow["consent_url"], values)
    assert urlsplit(consent).netloc == "sellercentral.amazon.com.br"  # Brazil's Seller Central
    answer = requests.get(on_emulator(consent, emulator), allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(PLATFORM_REDIRECT + "?")
    returned = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert returned["state"] == state  # the platform refuses any other state
    values["auth_code_value"] = returned[flow["auth_code_key"]]

    token_url = flow["access_token_url"]
    assert urlsplit(token_url).netloc == "api.amazon.com"
    params = {render(k, values): render(v, values) for k, v in flow["access_token_params"].items()}
    headers = {k: render(v, values) for k, v in flow["access_token_headers"].items()}
    form = headers.get("Content-Type") == "application/x-www-form-urlencoded"
    body = urlencode(params) if form else json.dumps(params)
    tokens = requests.post(on_emulator(token_url, emulator), data=body, headers=headers, timeout=10)
    assert tokens.status_code == 200, tokens.text

    config = dict(user_config)
    for key in flow["extract_output"]:
        path = oauth["complete_oauth_output_specification"]["properties"][key]
        set_path(config, path["path_in_connector_config"], tokens.json()[key])
    outputs = oauth["complete_oauth_server_output_specification"]["properties"]
    for key, field in outputs.items():
        set_path(config, field["path_in_connector_config"], server_inputs[key])
    config["_code"] = values["auth_code_value"]  # for the test to try it again; not a key
    return config


def test_a_seller_authorizes_in_the_ui_and_check_succeeds_with_the_token_it_got(cli, emulator):
    user_config = emulator.connector_config(START, app_id=TEST_APPLICATION_ID)
    for key in ("refresh_token", "lwa_app_id", "lwa_client_secret"):
        del user_config[key]  # the flow fills them in
    config = authorize(cli, emulator, user_config)
    code = config.pop("_code")
    assert config["refresh_token"].startswith("Atzr|")
    assert config["refresh_token"] != emulator.credentials.refresh_token  # the seller's own
    check = cli.run("check", config)
    (status,) = [m["connectionStatus"] for m in check.of_type("CONNECTION_STATUS")]
    assert status["status"] == "SUCCEEDED", status
    assert config["refresh_token"] not in check.stdout + check.stderr
    # The code is single use, as Amazon's is: a second exchange is refused.
    assert exchange(emulator, code) == (400, "invalid_grant")


def test_pasting_a_refresh_token_still_works_and_app_id_is_optional(cli, emulator):
    config = emulator.connector_config(START)  # no app_id: the token is pasted
    check = cli.run("check", config)
    (status,) = [m["connectionStatus"] for m in check.of_type("CONNECTION_STATUS")]
    assert status["status"] == "SUCCEEDED", status


@pytest.fixture
def manual_emulator(dataset):
    clock = ManualClock()
    with EmulatorServer(dataset, clock=clock) as server:
        yield server, clock


def consent(server: EmulatorServer, **params: str) -> requests.Response:
    query = {"application_id": TEST_APPLICATION_ID, "state": "s" * 16}
    query.update(redirect_uri=PLATFORM_REDIRECT, **params)
    return requests.get(server.consent_url, params=query, allow_redirects=False, timeout=10)


def exchange(
    server: EmulatorServer, code: str, redirect_uri: str = PLATFORM_REDIRECT
) -> tuple[int, str]:
    """The authorization_code grant as the platform posts it: (status, error or "ok")."""
    answer = requests.post(
        server.lwa_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": server.credentials.client_id,
            "client_secret": server.credentials.client_secret,
        },
        timeout=10,
    )
    return answer.status_code, answer.json().get("error") or "ok"


def code_of(answer: requests.Response) -> str:
    return parse_qs(urlsplit(answer.headers["Location"]).query)["spapi_oauth_code"][0]


def test_the_emulator_refuses_what_amazon_refuses(manual_emulator):
    server, clock = manual_emulator
    assert consent(server, application_id="amzn1.sp.solution.other").status_code == 400
    assert consent(server, state="").status_code == 400
    expired = code_of(consent(server))
    clock.advance(301)  # "The spapi_oauth_code value expires after five minutes."
    assert exchange(server, expired) == (400, "invalid_grant")
    elsewhere = code_of(consent(server))
    assert exchange(server, elsewhere, redirect_uri="https://other.example.com/cb") == (
        400,
        "invalid_grant",
    )
    assert exchange(server, code_of(consent(server, version="beta"))) == (200, "ok")  # a draft
