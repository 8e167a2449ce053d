"""`check`, `discover` and `read` give one message naming the field for a bad config value of
every spec key, with no traceback, whatever streams `read` is given; `read` refuses a saved state
a selected stream cannot use the same way (run in-process through the console script's `run`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests

from source_sp_invoices.run import run
from unit_tests.conftest import make_config
from unit_tests.test_config import BAD_VALUES

ROOT = Path(__file__).resolve().parent.parent
ALL_FIVE = json.loads((ROOT / "integration_tests" / "configured_catalog.json").read_text("utf-8"))


def streams(*names: str) -> dict[str, Any]:
    """A catalog of some streams of integration_tests/configured_catalog.json."""
    return {"streams": [s for s in ALL_FIVE["streams"] if s["stream"]["name"] in names]}


# The selections that take different paths in `read`: the CDK's loop alone, the document pass
# alone (with one document stream or the other), both groups in two threads.
CATALOGS = {
    "invoices": streams("invoices"),
    "invoice_documents": streams("invoice_documents"),
    "invoice_items": streams("invoice_items"),
    "all five": ALL_FIVE,
}
COMMANDS = ["check", "discover", *(f"read {catalog}" for catalog in CATALOGS)]
TRACEBACK = ("Traceback", 'File "')


def test_the_catalogs_are_what_they_say():
    assert [[s["stream"]["name"] for s in c["streams"]] for c in CATALOGS.values()] == [
        ["invoices"],
        ["invoice_documents"],
        ["invoice_items"],
        ["invoice_attributes", "invoices", "invoice_exports", "invoice_documents", "invoice_items"],
    ]


def test_every_key_of_the_spec_has_a_bad_value():
    spec = json.loads((ROOT / "source_sp_invoices" / "spec.json").read_text())
    assert set(spec["connectionSpecification"]["properties"]) == {f for f, _, _ in BAD_VALUES}


def failure(
    tmp_path: Path,
    capfd,
    command: str,
    config: dict[str, Any],
    state: list[dict[str, Any]] | None = None,
) -> tuple[str, str]:
    """The one message a command gives for something the user must fix, and all it printed.

    Nothing else may say it went wrong: no error or fatal log, no second error, no traceback
    anywhere (not in a trace's stack_trace either), and `read` starts no stream.
    """
    name, _, catalog = command.partition(" ")
    (tmp_path / "config.json").write_text(json.dumps(config))
    args = [name, "--config", str(tmp_path / "config.json")]
    if catalog:
        (tmp_path / "catalog.json").write_text(json.dumps(CATALOGS[catalog]))
        args += ["--catalog", str(tmp_path / "catalog.json")]
    if state is not None:
        (tmp_path / "state.json").write_text(json.dumps(state))
        args += ["--state", str(tmp_path / "state.json")]
    try:
        run(args)
        exited = 0
    except SystemExit as exit_:
        exited = exit_.code or 0
    out, err = capfd.readouterr()
    printed = out + err
    assert not [word for word in TRACEBACK if word in printed], printed
    messages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    logs = [m["log"] for m in messages if m["type"] == "LOG"]
    assert [log for log in logs if log["level"] in ("ERROR", "FATAL")] == []
    traces = [m["trace"] for m in messages if m["type"] == "TRACE"]
    assert [trace for trace in traces if trace["type"] != "ERROR"] == []  # no stream status
    errors = [trace["error"] for trace in traces]
    if name == "check":
        assert exited == 0 and errors == []
        (status,) = [m["connectionStatus"] for m in messages if m["type"] == "CONNECTION_STATUS"]
        assert status["status"] == "FAILED"
        return status["message"], printed
    assert exited == 1
    assert len(errors) == 1, errors
    assert errors[0]["failure_type"] == "config_error"
    assert (
        errors[0]["stack_trace"]
        == f"source_sp_invoices.config.ConfigError: {errors[0]['message']}\n"
    )
    assert errors[0]["internal_message"] == errors[0]["message"]
    return errors[0]["message"], printed


def said(command: str) -> int:
    """How often a command prints its one message: a check's status says it once; the error
    trace of discover and read in its message, internal_message and stack_trace."""
    return 1 if command == "check" else 3


@pytest.mark.parametrize(("field", "value", "problem"), BAD_VALUES)
def test_check_discover_and_read_give_one_message_naming_the_field(
    tmp_path, capfd, requests_mock, field, value, problem
):
    config = make_config(**{field: value})
    if value is None:
        config.pop(field, None)
    for command in COMMANDS:
        message, printed = failure(tmp_path, capfd, command, config)
        assert message == f"Invalid configuration: {problem}", command
        assert message.count("Invalid configuration") == 1, command
        assert printed.count("Invalid configuration") == said(command), command
    assert requests_mock.call_count == 0  # refused before any request


def unknown_keys(stream: str, keys: str, written: str) -> str:
    return (
        f"The saved state of stream `{stream}` has the key(s) {keys}, which this version of the "
        f"connector does not read (it reads {written}): it comes from another version or was "
        "edited. Fix the state or reset the stream; it is not replaced by the start date silently."
    )


DOCUMENT_KEYS = (
    "dateEnd, resume_from, exports, longestRangeDays, invoicesPerDocument, fullestDocument, "
    "windowDays, delivered, pending, exportDayZone"
)
BAD_STATES = [
    (
        "invoices",
        {"date": "yesterday"},
        "date='yesterday', which is not a date-time like 2024-01-01T00:00:00Z",
    ),
    ("invoices", {"cursor": "2024-01-02T00:00:00Z"}, "cursor"),
    ("invoice_exports", {"updatedAt": "2024-01-02T00:00:00Z"}, "updatedAt"),
    ("invoice_documents", {"date_end": "2024-01-02", "bogus": 1}, "bogus, date_end"),
    ("invoice_documents", {"exports": ["E1"]}, "exports=['E1'], which is not a map"),
    (
        "invoice_items",
        {"dateEnd": "yesterday"},
        "dateEnd='yesterday', which is not a date like 2024-01-01",
    ),
    ("invoice_items", {"cursor": 1}, "cursor"),
    ("invoice_documents", {"longestRangeDays": True}, "longestRangeDays=True, which is not"),
    ("invoice_items", {"windowDays": "7"}, "windowDays='7', which is not"),
]
WRITTEN = {
    "invoices": "date, resume_from, delivered",
    "invoice_exports": "generateExportStartedAt",
    "invoice_documents": DOCUMENT_KEYS,
    "invoice_items": DOCUMENT_KEYS,
}


def expected_state_message(stream: str, what: str) -> str:
    if "=" not in what:
        return unknown_keys(stream, what, WRITTEN[stream])
    if what.endswith("which is not"):
        return (
            f"The saved state of stream `{stream}` has {what} a whole number of days (1 or "
            "more). Fix the state or reset the stream."
        )
    if what.startswith("exports="):
        return (
            f'The saved state of stream `{stream}` has {what} of "YYYY-MM-DD/YYYY-MM-DD" windows '
            'to {"exportId": ...}. Fix the state or reset the stream.'
        )
    return (
        f"The saved state of stream `{stream}` has {what}. Fix the state or reset the stream; "
        "it is not replaced by the start date silently."
    )


@pytest.mark.parametrize(("stream", "saved", "what"), BAD_STATES)
def test_read_refuses_a_bad_saved_state_before_any_stream_starts(
    tmp_path, capfd, requests_mock, stream, saved, what
):
    """With the stream alone and with all five: one message naming the stream and the keys."""
    state = [
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": stream}, "stream_state": saved}}
    ]
    for catalog in [c for c in CATALOGS if c in (stream, "all five")]:
        message, printed = failure(tmp_path, capfd, f"read {catalog}", make_config(), state)
        assert message == expected_state_message(stream, what), catalog
        assert printed.count("The saved state of stream") == said("read")
    assert requests_mock.call_count == 0  # not even a token


@pytest.mark.parametrize("field", ["api_endpoint", "lwa_endpoint"])
def test_on_airbyte_cloud_every_command_refuses_a_loopback_endpoint_naming_it(
    tmp_path, capfd, monkeypatch, field
):
    monkeypatch.setenv("DEPLOYMENT_MODE", "cloud")
    # The CDK's entrypoint wraps Session.send for good on Cloud: put it back after the test.
    monkeypatch.setattr(requests.Session, "send", requests.Session.send)
    config = make_config(**{field: "https://127.0.0.1:8443"})
    messages = {command: failure(tmp_path, capfd, command, config)[0] for command in COMMANDS}
    assert len(set(messages.values())) == 1, messages
    assert f"`{field}` https://127.0.0.1:8443 points to a loopback address" in messages["check"]
