"""The installed CLI against the emulator: spec, check, discover, and reads of invoices."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from integration_tests.conftest import END, START, catalog, parse_messages, state_of

INVOICE_STREAMS = ("invoice_attributes", "invoices")
ALL_FIVE = json.loads((Path(__file__).parent / "configured_catalog.json").read_text("utf-8"))


def truth(dataset, start: str = START, end: str = END) -> list[dict]:
    """The emulator's invoices issued in [start, end), oldest first."""
    inclusive = dataset.invoices(start, end, sort_order="ASC")
    return [invoice for invoice in inclusive if invoice["date"] < end.replace("Z", "")]


def by_id(records: list[dict]) -> dict[str, dict]:
    indexed = {record["id"]: record for record in records}
    assert len(indexed) == len(records), "an invoice was emitted twice"
    return indexed


def test_spec_lists_every_key_of_the_contract(cli):
    run = cli.run("spec")
    assert run.returncode == 0
    spec = run.of_type("SPEC")[0]["spec"]["connectionSpecification"]
    for key in (
        "region",
        "aws_environment",
        "marketplace_id",
        "lwa_app_id",
        "lwa_client_secret",
        "refresh_token",
        "replication_start_date",
        "replication_end_date",
        "api_endpoint",
        "lwa_endpoint",
    ):
        assert key in spec["properties"], key
        assert spec["properties"][key]["description"]
    for secret in ("lwa_app_id", "lwa_client_secret", "refresh_token"):
        assert spec["properties"][secret]["airbyte_secret"] is True


def test_check_succeeds_against_the_emulator(cli, config):
    run = cli.run("check", config)
    assert run.returncode == 0
    assert run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]["status"] == "SUCCEEDED"


def check_failure(cli, config) -> str:
    run = cli.run("check", config)
    assert run.returncode == 0, run.stderr
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "Traceback" not in run.stdout + run.stderr
    return status["message"]


def test_check_fails_when_the_refresh_token_is_rejected(cli, config):
    config["refresh_token"] = "Atzr|not-the-right-token"
    message = check_failure(cli, config)
    assert message.startswith("Login with Amazon rejected the credentials (invalid_grant)")
    assert "Atzr|not-the-right-token" not in message


def test_check_fails_when_the_client_is_rejected(cli, config):
    config["lwa_client_secret"] = "wrong-secret-value"
    assert "rejected the credentials (invalid_client)" in check_failure(cli, config)


def test_check_fails_with_the_role_hint_when_access_is_denied(cli, config, emulator):
    emulator.faults.deny_role = True
    assert "Tax Invoicing role" in check_failure(cli, config)


def test_check_fails_naming_an_unreachable_host(cli, config):
    config["api_endpoint"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    assert check_failure(cli, config).startswith("Could not connect to 127.0.0.1:9")


def test_check_fails_naming_a_bad_field(cli, config):
    config["api_endpoint"] = "http://sp-api.example.com"
    assert "`api_endpoint` http://sp-api.example.com uses plain http" in check_failure(cli, config)


def one_config_error(run) -> str:
    """The message of the one error a command ended with: a config error, said once, with no
    stream started (no stream status), no error log and no traceback."""
    assert run.returncode == 1
    (error,) = run.errors()
    assert error["failure_type"] == "config_error"
    assert [m for m in run.of_type("TRACE") if m["trace"]["type"] != "ERROR"] == []
    assert [m for m in run.of_type("LOG") if m["log"]["level"] in ("ERROR", "FATAL")] == []
    assert "Traceback" not in run.stdout + run.stderr and 'File "' not in run.stdout + run.stderr
    assert run.of_type("RECORD") == [] and run.of_type("STATE") == []
    return error["message"]


@pytest.mark.parametrize("command", ["discover", "read"])
def test_discover_and_read_with_a_bad_config_fail_with_a_config_error(
    cli, config, emulator, command
):
    config["replication_start_date"] = "2024-13-01T00:00:00Z"
    # Every stream: the document streams' pass and the CDK's loop, in two threads.
    run = cli.run(command, config, **({"catalog": ALL_FIVE} if command == "read" else {}))
    assert one_config_error(run) == (
        "Invalid configuration: `replication_start_date` 2024-13-01T00:00:00Z is not a real date: "
        "use YYYY-MM-DDTHH:MM:SSZ."
    )
    assert emulator.stats.count() == 0


@pytest.mark.parametrize("stream", ["invoice_documents", "invoice_items"])
def test_read_refuses_a_saved_state_of_a_document_stream_with_unknown_keys(
    cli, config, emulator, stream
):
    state = state_of(stream, {"dateEnd": "2024-01-05", "date_end": "2024-01-05", "page": 2})
    run = cli.run("read", config, catalog=ALL_FIVE, state=state)
    assert one_config_error(run) == (
        f"The saved state of stream `{stream}` has the key(s) date_end, page, which this version "
        "of the connector does not read (it reads dateEnd, resume_from, exports, "
        "longestRangeDays, invoicesPerDocument, fullestDocument, windowDays, delivered, "
        "pending, exportDayZone): "
        "it comes from another version or was edited. Fix the state or reset the stream; it is "
        "not replaced by the start date silently."
    )
    assert emulator.stats.count() == 0  # refused before any stream asked for a token


def test_discover_lists_the_streams(cli, config):
    run = cli.run("discover", config)
    streams = {s["name"]: s for s in run.of_type("CATALOG")[0]["catalog"]["streams"]}
    assert set(INVOICE_STREAMS) <= set(streams)
    assert streams["invoices"]["default_cursor_field"] == ["date"]


def sort_key(record: dict) -> str:
    return json.dumps(record, sort_keys=True)


def test_attributes_are_every_option_of_the_emulator(cli, config, dataset):
    run = cli.run("read", config, catalog=catalog("invoice_attributes"))
    expected = [
        {"attribute": key.removesuffix("Options"), **option}
        for key, options in dataset.attributes.items()
        for option in options
    ]
    assert sorted(run.records("invoice_attributes"), key=sort_key) == sorted(expected, key=sort_key)


def test_a_full_refresh_reads_exactly_the_emulators_invoices(cli, config, dataset):
    run = cli.run("read", config, catalog=catalog("invoices", mode="full_refresh"))
    assert run.returncode == 0, run.errors()
    records = run.records("invoices")
    assert records == truth(dataset)  # same invoices, same fields, same order
    assert len(records) > 400
    assert run.states("invoices")[-1] == {"date": END}


def test_incremental_reads_continue_from_the_state_without_gaps_or_repeats(cli, config, dataset):
    config.update(lookback_days=0, replication_end_date="2024-01-10T00:00:00Z")
    first = cli.run("read", config, catalog=catalog("invoices"))
    assert first.states("invoices")[-1] == {"date": "2024-01-10T00:00:00Z"}
    config["replication_end_date"] = END
    state = state_of("invoices", first.states("invoices")[-1])
    second = cli.run("read", config, catalog=catalog("invoices"), state=state)
    assert second.records("invoices") == truth(dataset, "2024-01-10T00:00:00Z", END)
    both = by_id(first.records("invoices") + second.records("invoices"))
    assert set(both) == {invoice["id"] for invoice in truth(dataset)}


def test_the_lookback_reads_late_status_changes_again(cli, config, dataset, emulator):
    config.update(lookback_days=3, replication_end_date="2024-01-15T00:00:00Z")
    first = cli.run("read", config, catalog=catalog("invoices"))
    late = next(i for i in first.records("invoices") if i["date"] >= "2024-01-13")
    emulator.control({"set_status": [{"invoiceId": late["id"], "status": "CANCELED"}]})
    config["replication_end_date"] = END
    state = state_of("invoices", first.states("invoices")[-1])
    second = by_id(
        cli.run("read", config, catalog=catalog("invoices"), state=state).records("invoices")
    )
    assert second[late["id"]]["status"] == "CANCELED"
    assert min(record["date"] for record in second.values()) >= "2024-01-12"


def test_a_killed_sync_resumes_at_its_first_unfinished_window(cli, config, dataset, emulator):
    config.update(invoices_window_days=1)
    emulator.faults.latency["getInvoices"] = 0.15
    process = subprocess.Popen(
        cli.command("read", config, catalog("invoices")), stdout=subprocess.PIPE, text=True
    )
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        if sum('"type": "STATE"' in x or '"type":"STATE"' in x for x in lines) == 4:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    emulator.faults.latency.clear()
    killed = parse_messages("".join(lines))
    last_state = [m["state"]["stream"]["stream_state"] for m in killed if m["type"] == "STATE"][-1]
    assert last_state["date"] == last_state["resume_from"] == "2024-01-05T00:00:00Z"
    # The killed process may have left a request in flight (0.15 s of latency), which the
    # emulator logs whenever it answers; the resumed process logs in for a token of its own,
    # so its calls are those that carry a token issued after the kill.
    tokens_before = len(emulator.tokens.issued())
    resumed = cli.run(
        "read", config, catalog=catalog("invoices"), state=state_of("invoices", last_state)
    )
    resumed_calls = [
        call
        for call in emulator.stats.requests("getInvoices")
        if call.token is not None and call.token > tokens_before
    ]
    assert resumed_calls[0].query["dateStart"] == ["2024-01-05T00:00:00Z"]
    before = [m["record"]["data"] for m in killed if m["type"] == "RECORD"]
    union = {r["id"] for r in before} | {r["id"] for r in resumed.records("invoices")}
    assert union == {invoice["id"] for invoice in truth(dataset)}


def test_calls_are_paced_at_the_rate_amazon_applies_so_no_429_comes(cli, config, dataset, emulator):
    config.update(invoices_window_days=1)
    emulator.set_rate("getInvoices", 0.05)  # 3 calls/s at this time scale, after a burst of 20
    run = cli.run("read", config, catalog=catalog("invoices"))
    assert run.returncode == 0, run.errors()
    assert emulator.stats.count("getInvoices") > 20  # more calls than the burst allows at once
    assert emulator.stats.count("getInvoices", 429) == 0
    assert run.records("invoices") == truth(dataset)


def test_429s_wait_and_retry_until_every_invoice_is_read(cli, config, dataset, emulator):
    emulator.faults.fail_next("getInvoices", 429, count=3)
    run = cli.run("read", config, catalog=catalog("invoices"))
    assert run.returncode == 0, run.errors()
    assert emulator.stats.count("getInvoices", 429) == 3
    assert run.records("invoices") == truth(dataset)


def test_server_errors_are_retried(cli, config, dataset, emulator):
    emulator.faults.fail_next("getInvoices", 503, count=2)
    emulator.faults.fail_next("getInvoicesAttributes", 500, count=1)
    run = cli.run("read", config, catalog=catalog(*INVOICE_STREAMS))
    assert run.returncode == 0, run.errors()
    assert run.records("invoices") == truth(dataset)
    assert emulator.stats.count("getInvoices", 503) == 2


def test_an_access_token_that_expires_mid_sync_is_refreshed(cli, config, dataset, emulator):
    config.update(invoices_window_days=1)
    emulator.faults.latency["getInvoices"] = 0.05

    def expire_after_three_windows() -> None:
        if emulator.stats.wait("getInvoices", 200, count=3, timeout=60):
            emulator.expire_tokens()

    expirer = threading.Thread(target=expire_after_three_windows, daemon=True)
    expirer.start()
    run = cli.run("read", config, catalog=catalog("invoices"))
    expirer.join(timeout=5)
    assert run.returncode == 0, run.errors()
    assert run.records("invoices") == truth(dataset)
    assert emulator.stats.count("getInvoices", 403) == 1  # the expired token was refused once
    assert emulator.stats.count("lwaToken", 200) == 2  # and refreshed once


def test_a_400_fails_the_stream_with_amazons_message_and_request_id(cli, config, emulator):
    emulator.faults.fail_next("getInvoices", 400, count=1)
    run = cli.run("read", config, catalog=catalog("invoices"))
    assert run.returncode != 0
    message = run.errors()[0]["message"]
    assert message.startswith("Amazon rejected getInvoices: InvalidInput")
    assert "x-amzn-RequestId" in message
