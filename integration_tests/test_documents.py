"""invoice_documents and invoice_exports through the installed CLI against the emulator."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest

from integration_tests.conftest import START, catalog, parse_messages, state_of
from sp_api_emulator import nfe_xml

END_OF_WEEK = "2024-01-08T00:00:00Z"  # whole days 2024-01-01 .. 2024-01-07


@pytest.fixture
def config(emulator):
    """One-day windows, so that tests can name the export of each day."""
    return emulator.connector_config(
        START, replication_end_date=END_OF_WEEK, documents_window_days=1
    )


def truth(dataset, first: str = "2024-01-01", last: str = "2024-01-07") -> dict[str, str]:
    """invoice id -> exact XML text of every invoice issued on the UTC days first..last."""
    invoices = dataset.invoices(f"{first}T00:00:00", f"{last}T23:59:59.999999")
    return {
        invoice["id"]: nfe_xml.render(dataset.record(invoice["id"])).decode("utf-8")
        for invoice in invoices
    }


def creations(emulator) -> list[str]:
    """The first day of every export the connector created, in order."""
    return [export.query["dateStart"] for export in emulator.export_requests()]


def test_a_full_read_returns_every_invoice_of_every_day_with_its_exact_xml(cli, config, dataset):
    run = cli.run("read", config, catalog=catalog("invoice_documents", mode="full_refresh"))
    assert run.returncode == 0, run.errors()
    records = run.records("invoice_documents")
    assert Counter(r["invoiceId"] for r in records).most_common(1)[0][1] == 1
    assert {r["invoiceId"]: r["xml"] for r in records} == truth(dataset)
    for record in records:
        assert record["fileName"] == f"{record['invoiceId']}.xml"
        assert record["dateStart"] == record["dateEnd"]  # one-day windows by default
    # Non-ASCII names arrive as the same text, not escapes or mojibake, in the XML and columns.
    accented = {
        invoice_id: dataset.record(invoice_id).nfe.recipient.name
        for invoice_id in truth(dataset)
        if not dataset.record(invoice_id).nfe.recipient.name.isascii()
    }
    assert accented, "the data set must hold names with accents for this check to mean much"
    by_id = {record["invoiceId"]: record for record in records}
    for invoice_id, name in accented.items():
        assert by_id[invoice_id]["recipientName"] == name
    final = run.states("invoice_documents")[-1]
    assert final == {"dateEnd": "2024-01-07", "fullestDocument": final["fullestDocument"]}
    assert final["fullestDocument"] == max(
        Counter(r["invoicesDocumentId"] for r in records).values()
    )


def test_documents_and_invoices_agree(cli, config, dataset):
    run = cli.run("read", config, catalog=catalog("invoices", "invoice_documents"))
    invoices = {r["id"] for r in run.records("invoices")}
    documents = {r["invoiceId"] for r in run.records("invoice_documents")}
    assert invoices == documents == set(truth(dataset))


def test_an_incremental_read_creates_no_export_for_days_already_done(
    cli, config, dataset, emulator
):
    config.update(lookback_days=0, replication_end_date="2024-01-05T00:00:00Z")
    first = cli.run("read", config, catalog=catalog("invoice_documents"))
    assert creations(emulator) == [f"2024-01-0{d}" for d in range(1, 5)]
    config["replication_end_date"] = END_OF_WEEK
    state = state_of("invoice_documents", first.states("invoice_documents")[-1])
    second = cli.run("read", config, catalog=catalog("invoice_documents"), state=state)
    assert creations(emulator)[4:] == ["2024-01-05", "2024-01-06", "2024-01-07"]
    assert {r["invoiceId"] for r in second.records("invoice_documents")} == set(
        truth(dataset, "2024-01-05")
    )


def test_a_sync_killed_mid_documents_resumes_without_loss_or_a_second_export(
    cli, config, dataset, emulator
):
    process = subprocess.Popen(
        cli.command("read", config, catalog("invoice_documents")), stdout=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        states = [m for m in parse_messages("".join(lines[-1:])) if m["type"] == "STATE"]
        if states and states[0]["state"]["stream"]["stream_state"].get("dateEnd") == "2024-01-03":
            break  # days 01..03 are done, later exports are in flight
    for line in process.stdout:  # a few more messages, then kill it hard mid-window
        lines.append(line)
        if '"RECORD"' in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=30)
    killed = parse_messages("".join(lines))
    last_state = [m["state"]["stream"]["stream_state"] for m in killed if m["type"] == "STATE"][-1]
    assert last_state["exports"], "the state must record the exports in flight"
    resumed = cli.run(
        "read",
        config,
        catalog=catalog("invoice_documents"),
        state=state_of("invoice_documents", last_state),
    )
    assert resumed.returncode == 0, resumed.errors()
    before = {m["record"]["data"]["invoiceId"] for m in killed if m["type"] == "RECORD"}
    after = {r["invoiceId"] for r in resumed.records("invoice_documents")}
    assert before | after == set(truth(dataset))
    days = creations(emulator)
    assert sorted(days) == sorted(set(days)), f"an export was created twice: {days}"


def test_an_export_that_errors_once_is_created_again(cli, config, dataset, emulator):
    emulator.faults.fail_exports(1)
    run = cli.run("read", config, catalog=catalog("invoice_documents"))
    assert run.returncode == 0, run.errors()
    records = run.records("invoice_documents")
    assert {r["invoiceId"] for r in records} == set(truth(dataset))
    assert creations(emulator).count("2024-01-01") == 2
    # the day's records come from the export created again, none from the one in ERROR
    failed, again = [e for e in emulator.export_requests() if e.date_start == date(2024, 1, 1)]
    assert failed.error_message and again.error_message is None
    assert {r["exportId"] for r in records if r["dateStart"] == "2024-01-01"} == {again.export_id}


def test_an_export_that_keeps_failing_stops_the_sync_at_that_window(cli, config, emulator):
    emulator.faults.fail_exports(3, date_start="2024-01-03", message="Too many invoices")
    run = cli.run("read", config, catalog=catalog("invoice_documents"))
    assert run.returncode != 0
    message = run.errors()[0]["message"]
    assert "Amazon could not export the invoices of 2024-01-03..2024-01-03" in message
    assert "Too many invoices" in message
    days = {r["dateEnd"] for r in run.records("invoice_documents")}
    assert days <= {"2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"}
    assert all(s.get("dateEnd", "") < "2024-01-03" for s in run.states("invoice_documents"))


@pytest.mark.parametrize(
    "fault", ["expire_urls", "truncate_downloads", "drop_downloads"], ids=lambda f: f
)
def test_download_faults_end_in_a_complete_sync(cli, config, dataset, emulator, fault):
    getattr(emulator.faults, fault)(2)
    config["replication_end_date"] = "2024-01-04T00:00:00Z"
    run = cli.run("read", config, catalog=catalog("invoice_documents"))
    assert run.returncode == 0, run.errors()
    assert {r["invoiceId"] for r in run.records("invoice_documents")} == set(
        truth(dataset, last="2024-01-03")
    )


def test_invoice_exports_lists_the_exports_the_documents_stream_created(cli, config, emulator):
    config["replication_end_date"] = "2024-01-03T00:00:00Z"
    cli.run("read", config, catalog=catalog("invoice_documents"))
    run = cli.run("read", config, catalog=catalog("invoice_exports"))
    exports = run.records("invoice_exports")
    assert {e["status"] for e in exports} == {"DONE"}
    assert len(exports) == 2 and all(e["invoicesDocumentIds"] for e in exports)
    assert run.states("invoice_exports")[-1]["generateExportStartedAt"]


def test_reads_stay_within_the_document_rate(cli, config, emulator):
    config["replication_end_date"] = (
        date(2024, 1, 1) + timedelta(days=4)
    ).isoformat() + "T00:00:00Z"
    cli.run("read", config, catalog=catalog("invoice_documents"))
    assert emulator.stats.count("getInvoicesDocument", 429) == 0
    assert emulator.stats.count("createInvoicesExport", 429) == 0


def test_documents_carry_nfe_columns_and_items_add_up_to_their_totals(
    cli, config, dataset, emulator
):
    config["replication_end_date"] = "2024-01-04T00:00:00Z"
    streams = ("invoices", "invoice_documents", "invoice_items")
    run = cli.run("read", config, catalog=catalog(*streams))
    assert run.returncode == 0, run.errors()
    invoices = {r["id"]: r for r in run.records("invoices")}
    documents = {r["invoiceId"]: r for r in run.records("invoice_documents")}
    items = run.records("invoice_items")
    assert set(documents) == set(invoices) == {i["invoiceId"] for i in items}
    for invoice_id, document in documents.items():
        assert "nfeParseError" not in document
        assert document["accessKey"] == document["protocolAccessKey"]
        assert document["number"] == invoices[invoice_id]["externalInvoiceId"]
        own = [i for i in items if i["invoiceId"] == invoice_id]
        assert sorted(i["itemNumber"] for i in own) == list(range(1, len(own) + 1))
        gross = sum(Decimal(str(i["grossValue"])) for i in own)
        assert gross == Decimal(str(document["totalProducts"]))
    # Both streams came from the same exports and documents: each downloaded once.
    assert len(emulator.export_requests()) == 3
    assert emulator.stats.count("getInvoicesDocument", 200) == len(
        {d["invoicesDocumentId"] for d in documents.values()}
    )


def test_invoice_items_alone_reads_every_item(cli, config, dataset):
    config["replication_end_date"] = "2024-01-03T00:00:00Z"
    run = cli.run("read", config, catalog=catalog("invoice_items"))
    assert run.returncode == 0, run.errors()
    assert {i["invoiceId"] for i in run.records("invoice_items")} == set(
        truth(dataset, last="2024-01-02")
    )


def test_raw_xml_only_when_nfe_columns_are_off(cli, config):
    config.update(parse_nfe=False, replication_end_date="2024-01-02T00:00:00Z")
    run = cli.run("read", config, catalog=catalog("invoice_documents", "invoice_items"))
    documents = run.records("invoice_documents")
    assert documents and all("accessKey" not in d for d in documents)
    assert run.records("invoice_items") == []


def test_latin1_and_bom_files_give_the_same_columns_as_utf8(cli, dataset):
    from source_sp_invoices.nfe import NfeParser
    from sp_api_emulator import EmulatorServer

    with EmulatorServer(dataset, time_scale=60.0, encoding_mix=True) as mixed:
        config = mixed.connector_config(
            START, replication_end_date="2024-01-03T00:00:00Z", documents_window_days=1
        )
        run = cli.run("read", config, catalog=catalog("invoice_documents"))
    assert run.returncode == 0, run.errors()
    documents = run.records("invoice_documents")
    encodings = {d["invoiceId"]: nfe_xml.encoding_for(d["invoiceId"]) for d in documents}
    assert set(encodings.values()) == set(nfe_xml.ENCODINGS), "the mix must hold all three"
    parser = NfeParser()
    for document in documents:
        record = dataset.record(document["invoiceId"])
        encoding = encodings[document["invoiceId"]]
        # the file's text, decoded as it declares (a BOM is not text)
        assert document["xml"] == nfe_xml.render(record, encoding).decode(encoding)
        utf8 = nfe_xml.render(record)
        expected = {k: v for k, v in parser.parse(utf8).header.items() if v is not None}
        assert document.get("nfeParseError") is None
        assert {k: document.get(k) for k in expected} == expected
