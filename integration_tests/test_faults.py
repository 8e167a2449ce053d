"""Faults of the API and the network, injected by the emulator: each ends in a complete and
correct sync, or in a loud failure that says what failed; never in missing records."""

from __future__ import annotations

import threading
import time
from collections import Counter
from urllib.parse import parse_qsl, quote, urlsplit

from airbyte_cdk.models import AirbyteStreamStatus, AirbyteStreamStatusReasonType

from integration_tests.conftest import ALL_STREAMS, DOCUMENT_STREAMS, catalog
from integration_tests.test_cli import truth as invoice_truth
from integration_tests.test_documents import truth as document_truth
from source_sp_invoices import settings
from sp_api_emulator import DOWNLOAD_OPERATION

END_OF_DAY_3 = "2024-01-04T00:00:00Z"


def ids(records: list[dict], key: str) -> list[str]:
    values = [record[key] for record in records]
    assert len(values) == len(set(values)), "a record was emitted twice"
    return sorted(values)


def test_every_fault_of_the_api_at_once_ends_in_a_complete_sync(cli, emulator, dataset):
    config = emulator.connector_config(
        "2024-01-01T00:00:00Z", replication_end_date=END_OF_DAY_3, documents_window_days=1
    )
    faults = emulator.faults
    faults.garble_next("getInvoices")  # a proxy's HTML page with a 200
    faults.cut_next("getInvoicesAttributes")  # the connection drops mid-body
    faults.cut_next("getInvoicesExport")
    faults.fail_next("getInvoicesDocument", 503)
    faults.fail_next("createInvoicesExport", 500)
    faults.garble_next("getInvoicesExports")
    faults.drop_downloads(1)
    run = cli.run("read", config, catalog=catalog(*ALL_STREAMS))
    assert run.returncode == 0, run.errors()
    invoices = run.records("invoices")
    assert ids(invoices, "id") == sorted(i["id"] for i in invoice_truth(dataset, end=END_OF_DAY_3))
    documents = run.records("invoice_documents")
    assert ids(documents, "invoiceId") == sorted(document_truth(dataset, last="2024-01-03"))
    items = {(item["invoiceId"], item["itemNumber"]) for item in run.records("invoice_items")}
    assert len(items) == len(run.records("invoice_items"))  # no item twice
    assert {invoice_id for invoice_id, _ in items} == {d["invoiceId"] for d in documents}
    assert run.records("invoice_attributes")
    run.records("invoice_exports")  # listed before any export exists: checked by its schema
    assert emulator.stats.count("getInvoicesExports", 200) == 2  # the garbled page, then JSON
    # The last days are listed slot by slot (changes/slots.py): two windows a day, and the
    # first three hours after the end date, which Brazil's reading of the last export holds.
    assert len(invoices) < settings.INVOICES_PAGE_SIZE  # so one page a window
    assert emulator.stats.count("getInvoices", 200) == 3 * 2 + 1 + 1  # the garbled one again
    for operation, status in [
        ("getInvoicesDocument", 503),
        ("createInvoicesExport", 500),
    ]:
        assert emulator.stats.count(operation, status) == 1  # the fault really happened
    assert "not JSON" in run.logs()  # and was seen for what it is


def test_slow_answers_time_out_and_are_asked_again(cli, config, dataset, emulator):
    emulator.faults.set_latency("getInvoices", 3.0)  # longer than the read timeout below

    def recover() -> None:  # slow until one answer came too late, then in time again
        emulator.stats.wait("getInvoices", timeout=60)  # recorded when answered: after 3 s
        emulator.faults.set_latency("getInvoices", None)

    threading.Thread(target=recover, daemon=True).start()
    started = time.monotonic()
    run = cli.run(
        "read",
        config,
        catalog=catalog("invoices"),
        env={"SP_INVOICES_READ_TIMEOUT_SECONDS": "1"},
    )
    assert run.returncode == 0, run.errors()
    assert run.records("invoices") == invoice_truth(dataset)
    assert "ReadTimeout" in run.logs() and "127.0.0.1" in run.logs()
    assert time.monotonic() - started < 120


def test_an_api_that_never_answers_in_time_fails_check_naming_the_host(cli, config, emulator):
    # A read retries eight times with exponential backoff before failing the same way (unit
    # test: test_a_request_that_always_times_out_fails_naming_the_host); check gives up sooner.
    emulator.faults.set_latency("getInvoicesAttributes", 2.0)
    run = cli.run("check", config, env={"SP_INVOICES_READ_TIMEOUT_SECONDS": "0.5"})
    assert run.returncode == 0
    status = run.of_type("CONNECTION_STATUS")[0]["connectionStatus"]
    assert status["status"] == "FAILED"
    assert "127.0.0.1" in status["message"] and "ReadTimeout" in status["message"]


def test_a_429_storm_is_waited_out_at_the_applied_rate_without_adding_429s(cli, emulator, dataset):
    config = emulator.connector_config(
        "2024-01-01T00:00:00Z", replication_end_date=END_OF_DAY_3, documents_window_days=1
    )
    storm = {"getInvoices": 6, "createInvoicesExport": 6, "getInvoicesDocument": 6}
    for operation, count in storm.items():
        emulator.faults.fail_next(operation, 429, count=count)
    run = cli.run("read", config, catalog=catalog("invoices", *DOCUMENT_STREAMS))
    assert run.returncode == 0, run.errors()
    invoices = run.records("invoices")
    assert ids(invoices, "id") == sorted(i["id"] for i in invoice_truth(dataset, end=END_OF_DAY_3))
    documents = run.records("invoice_documents")
    assert ids(documents, "invoiceId") == sorted(document_truth(dataset, last="2024-01-03"))
    items = {(item["invoiceId"], item["itemNumber"]) for item in run.records("invoice_items")}
    assert len(items) == len(run.records("invoice_items"))  # no item twice
    assert {invoice_id for invoice_id, _ in items} == {d["invoiceId"] for d in documents}
    for operation, count in storm.items():  # only the injected ones: the pacing added none
        assert emulator.stats.count(operation, 429) == count
    statuses = [
        m["trace"]["stream_status"]
        for m in run.of_type("TRACE")
        if m["trace"]["type"] == "STREAM_STATUS"
    ]
    # The UI is told a stream is rate limited: the CDK's HttpClient emits, for each 429 it
    # waits out, a RUNNING status of the stream whose call it was, with one RATE_LIMITED reason
    # (airbyte-cdk 7 gives no rate_limited.quota_reset). getInvoices is the invoices stream's;
    # createInvoicesExport and getInvoicesDocument the documents stream's.
    rate_limited = {
        "stream_descriptor": {"name": "?"},
        "status": AirbyteStreamStatus.RUNNING.value,
        "reasons": [{"type": AirbyteStreamStatusReasonType.RATE_LIMITED.value}],
    }
    with_reasons = [s for s in statuses if "reasons" in s]
    for status in with_reasons:
        assert {**status, "stream_descriptor": {"name": "?"}} == rate_limited
    assert Counter(s["stream_descriptor"]["name"] for s in with_reasons) == {
        "invoices": storm["getInvoices"],
        "invoice_documents": storm["createInvoicesExport"] + storm["getInvoicesDocument"],
    }


def test_no_secret_or_access_token_appears_in_any_output(cli, emulator, dataset):
    """Succeeding and failing runs, every byte they print, with and without --debug (where the
    CDK logs every SP-API answer's body, getInvoicesDocument's URLs among them): no credential,
    no access token, no pre-signed URL's signature, session token, credential or query string."""
    emulator.signer.ttl = 120  # URLs expire only when a fault below says so: fixed outcomes
    config = emulator.connector_config(
        "2024-01-01T00:00:00Z", replication_end_date="2024-01-03T00:00:00Z", documents_window_days=1
    )
    outputs = []
    every_stream = catalog(*ALL_STREAMS)
    outputs.append(cli.run("check", config))
    emulator.faults.expire_urls(1)  # and a fresh URL replaces it
    outputs.append(cli.run("read", config, catalog=every_stream, debug=True))
    debug_runs = [outputs[-1]]
    emulator.faults.fail_next("getInvoices", 400)  # a failing read: Amazon's message is echoed
    outputs.append(cli.run("read", config, catalog=catalog("invoices")))
    emulator.faults.deny_role = True  # 403 on every call: the role hint
    outputs.append(cli.run("read", config, catalog=catalog("invoice_documents")))
    outputs.append(cli.run("check", config))
    emulator.faults.deny_role = False
    outputs.append(cli.run("check", {**config, "refresh_token": config["refresh_token"] + "x"}))
    # Every way a download fails (whichever document each hits, and whether the read then
    # recovers), then a document whose URLs all expire: pre-signed URLs must not be printed.
    emulator.faults.expire_urls(1)
    emulator.faults.truncate_downloads(1)
    emulator.faults.drop_downloads(1)
    emulator.faults.fail_next(DOWNLOAD_OPERATION, 500)
    emulator.faults.fail_next(DOWNLOAD_OPERATION, 403)
    outputs.append(cli.run("read", config, catalog=catalog("invoice_documents"), debug=True))
    debug_runs.append(outputs[-1])
    emulator.faults.reset()
    emulator.faults.expire_urls(3)
    outputs.append(cli.run("read", config, catalog=catalog("invoice_documents")))
    assert outputs[-1].returncode != 0 and "fresh URL" in outputs[-1].stdout
    # The first document's three URLs answer S3's 400, 403 and 404: the sync fails on the last.
    for status in (400, 403, 404):
        emulator.faults.fail_next(DOWNLOAD_OPERATION, status)
    outputs.append(cli.run("read", config, catalog=every_stream, debug=True))
    debug_runs.append(outputs[-1])
    failed = [error["message"] for error in outputs[-1].errors()]
    assert any(m.endswith(": the download URL answered HTTP 404") for m in failed), failed
    assert not any("/_s3/" in m for m in failed)  # no part of the URL, not even its path
    for status in (400, 403):
        assert f"the download URL answered HTTP {status}; asking for a fresh URL" in (
            outputs[-1].stdout
        )
    assert [run.returncode != 0 for run in outputs[1:4]] == [False, True, True]
    printed = "\n".join(run.stdout + run.stderr for run in outputs)
    assert "Tax Invoicing role" in printed and '"status":"SUCCEEDED"' in printed.replace(" ", "")
    for run in debug_runs:  # the CDK did print getInvoicesDocument's answers, URLs and all
        assert "Receiving response" in run.stdout and "invoicesDocumentUrl" in run.stdout
    urls = emulator.signer.issued_urls()
    assert len(urls) >= 12  # URLs were issued, expired ones among them
    signatures = emulator.signer.issued()
    credentials = {v for url in urls for k, v in parse_qsl(urlsplit(url).query) if "Cred" in k}
    secrets = [
        config["lwa_client_secret"],
        config["refresh_token"],
        *emulator.tokens.issued(),
        *signatures,
        *(urlsplit(url).query for url in urls),
        *credentials,
        *(quote(credential, safe="") for credential in credentials),
    ]
    assert len(secrets) > 3  # access tokens were issued, so there was something to leak
    for secret in secrets:
        assert secret not in printed
