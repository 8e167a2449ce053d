"""`check`, `discover` and `read` give one message naming the field for a bad config value of
every spec key, with no traceback (run in-process through the console script's `run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from source_sp_invoices.run import run
from unit_tests.conftest import make_config
from unit_tests.test_config import BAD_OPTIONAL_VALUES

# A bad value for each required key too, and the words that must name it.
BAD_VALUES = {
    **BAD_OPTIONAL_VALUES,
    "replication_start_date": ("01/02/2024", "`replication_start_date` must be a UTC date-time"),
    # Not a number: the CDK masks a secret field's value everywhere in the output, and "42"
    # can be part of a message's emitted_at (the JSON then breaks): a flake, seen once.
    "lwa_app_id": (["amzn1.application-oa2-client.0123"], "`lwa_app_id` must be of type string"),
    "lwa_client_secret": (None, "`lwa_client_secret` is missing"),
    "refresh_token": ("", "`refresh_token`"),
}
CATALOG = {
    "streams": [
        {
            "stream": {
                "name": "invoices",
                "json_schema": {},
                "supported_sync_modes": ["full_refresh", "incremental"],
            },
            "sync_mode": "full_refresh",
            "destination_sync_mode": "append",
        }
    ]
}


def command(tmp_path: Path, name: str, config: dict[str, Any]) -> list[str]:
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    args = [name, "--config", str(config_path)]
    if name == "read":
        catalog_path = tmp_path / "catalog.json"
        catalog_path.write_text(json.dumps(CATALOG))
        args += ["--catalog", str(catalog_path)]
    return args


def failure_message(tmp_path: Path, capfd, name: str, config: dict[str, Any]) -> str:
    """The one message a command gives for a bad config; no traceback anywhere."""
    try:
        run(command(tmp_path, name, config))
        exited = 0
    except SystemExit as exit_:
        exited = exit_.code or 0
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    messages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if name == "check":
        assert exited == 0
        (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
        assert status["status"] == "FAILED"
        return status["message"]
    assert exited == 1
    errors = [m["trace"]["error"] for m in messages if m["type"] == "TRACE"]
    assert len(errors) == 1 and errors[0]["failure_type"] == "config_error"
    return errors[0]["message"]


def test_every_key_of_the_spec_has_a_bad_value():
    spec = json.loads(
        (Path(__file__).parent.parent / "source_sp_invoices" / "spec.json").read_text()
    )
    assert set(spec["connectionSpecification"]["properties"]) == set(BAD_VALUES)


@pytest.mark.parametrize("field", sorted(BAD_VALUES))
def test_check_discover_and_read_give_one_message_naming_the_field(tmp_path, capfd, field):
    value, expected = BAD_VALUES[field]
    config = make_config(**{field: value})
    if value is None:
        config.pop(field, None)
    messages = {name: failure_message(tmp_path, capfd, name, config) for name in COMMANDS}
    assert len(set(messages.values())) == 1, messages  # the same words from every command
    (message,) = set(messages.values())
    assert expected in message
    assert message.count("Invalid configuration") == 1


COMMANDS = ("check", "discover", "read")


@pytest.mark.parametrize("field", ["api_endpoint", "lwa_endpoint"])
def test_on_airbyte_cloud_every_command_refuses_a_loopback_endpoint_naming_it(
    tmp_path, capfd, monkeypatch, field
):
    monkeypatch.setenv("DEPLOYMENT_MODE", "cloud")
    # The CDK's entrypoint wraps Session.send for good on Cloud: put it back after the test.
    monkeypatch.setattr(requests.Session, "send", requests.Session.send)
    config = make_config(**{field: "https://127.0.0.1:8443"})
    messages = {name: failure_message(tmp_path, capfd, name, config) for name in COMMANDS}
    assert len(set(messages.values())) == 1, messages
    assert f"`{field}` https://127.0.0.1:8443 points to a loopback address" in messages["check"]
