"""The emulator's readings of the model over real HTTP: each switch of `Readings`, both values.

Amazon's Invoices model contradicts itself in places; the emulator serves each reading behind a
switch (sp_api_emulator/README.md, "Readings of the model"). Time runs on a ManualClock, so
exports finish and URLs expire without anyone sleeping.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from integration_tests.test_emulator_exports import Emulator as ExportsEmulator
from sp_api_emulator import (
    CHOICES,
    EXPORT_STATUSES,
    MARKETPLACE_ID,
    REPORTS_EXPORT_STATUSES,
    Dataset,
    EmulatorServer,
    Readings,
    encoding_for,
)
from sp_api_emulator.__main__ import parse_args

PREFIX = "/tax/invoices/2024-06-19"
EPOCH = datetime(2024, 7, 20, 12, 0, tzinfo=UTC)
START = date(2024, 7, 1)
WINDOW = {"dateStart": "2024-07-01T00:00:00Z", "dateEnd": "2024-07-06T23:59:59.999Z"}
TRUTH_WINDOW = (WINDOW["dateStart"], WINDOW["dateEnd"])  # the same, for the truth queries
FAST = {
    "getInvoices": 1000.0,
    "createInvoicesExport": 1000.0,
    "getInvoicesExports": 1000.0,
    "getInvoicesExport": 1000.0,
    "getInvoicesDocument": 1000.0,
}
TOKEN_WITH_FILTERS = {
    "errors": [
        {
            "code": "400",
            "message": "Invalid Request.",
            "details": "Specifying nextToken with any other parameters will cause the request "
            "to fail.",
        }
    ]
}
RATE_LIMIT = "x-amzn-RateLimit-Limit"


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """Six days of 20-60 invoices, shared by read-only tests."""
    return Dataset.generate(seed=21, start=START, days=6, invoices_per_day=(20, 60))


class Emulator(ExportsEmulator):
    """The export tests' server and client (manual clock), with getInvoices lifted too."""

    def __init__(self, dataset: Dataset, **options: Any) -> None:
        options.setdefault("rate_overrides", FAST)
        super().__init__(dataset, **options)

    def invoices(self, **params: Any) -> requests.Response:
        return self.call("GET", "/invoices", params={"marketplaceId": MARKETPLACE_ID, **params})

    def zip_ids(self, export_id: str) -> list[str]:
        """The invoice ids of every ZIP of a DONE export, in document order."""
        export = self.export(export_id)
        assert export["status"] == "DONE", export
        found = []
        for document_id in export["invoicesDocumentIds"]:
            response = requests.get(self.url(document_id), timeout=30)
            assert response.status_code == 200
            with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
                found += [name.removesuffix(".xml") for name in archive.namelist()]
        return found


@pytest.fixture
def emulator(dataset: Dataset) -> Iterator[Emulator]:
    with Emulator(dataset, max_invoices_per_document=50) as running:
        yield running


def first_error(response: requests.Response) -> dict[str, str]:
    errors = response.json()["errors"]
    assert len(errors) == 1
    return dict(errors[0])


def ids(invoices: list[dict[str, Any]]) -> list[str]:
    return [invoice["id"] for invoice in invoices]


# --- the Readings object, info, control and command line --------------------------------------


def test_readings_defaults_values_and_errors() -> None:
    assert Readings() == Readings(
        pagination="token_alone",
        export_dates="date",
        export_statuses="model",
        document_body="zip",
        rate_limit_header=True,
        invoice_filter_date="date",
        bare_date_zone="UTC",
    )
    assert Readings().to_json() == {name: values[0] for name, values in CHOICES.items()}
    assert all(len(values) == 2 for values in CHOICES.values())
    with pytest.raises(ValueError, match="pagination must be one of"):
        Readings(pagination="token_with_filters")
    with pytest.raises(ValueError, match="rate_limit_header"):
        Readings(rate_limit_header=1)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="frozen|cannot assign"):
        Readings().pagination = "same_arguments"  # type: ignore[misc]
    parsed = Readings.parse(
        ["rate_limit_header=false", "pagination=same_arguments", "bare_date_zone=America/Sao_Paulo"]
    )
    assert parsed == Readings(
        pagination="same_arguments", rate_limit_header=False, bare_date_zone="America/Sao_Paulo"
    )
    for bad, says in (
        (["pagination"], "NAME=VALUE"),
        (["paging=token_alone"], "unknown reading"),
        (["document_body=pdf"], "document_body must be one of"),
    ):
        with pytest.raises(ValueError, match=says):
            Readings.parse(bad)


def test_readings_from_the_command_line() -> None:
    assert parse_args([]).readings == Readings()
    args = parse_args(
        ["--reading", "export_statuses=reports", "--reading", "document_body=xml",
         "--reading", "rate_limit_header=False", "--reading", "invoice_filter_date=creation"]
    )  # fmt: skip
    assert args.readings == Readings(
        export_statuses="reports",
        document_body="xml",
        rate_limit_header=False,
        invoice_filter_date="creation",
    )
    for bad in (["--reading", "export_dates=datetime"], ["--reading", "nonsense"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_readings_show_in_info_and_change_at_run_time(emulator: Emulator) -> None:
    info = requests.get(emulator.server.url + "/_emulator/info", timeout=10).json()
    assert info["readings"] == Readings().to_json() == emulator.server.info()["readings"]
    assert info["readings"]["rate_limit_header"] is True
    assert RATE_LIMIT in emulator.invoices(pageSize=1).headers
    emulator.server.readings = Readings(rate_limit_header=False)  # read on every request
    assert RATE_LIMIT not in emulator.invoices(pageSize=1).headers
    state = emulator.control(
        {"readings": {"rate_limit_header": True, "pagination": "same_arguments"}}
    )
    assert state["readings"]["pagination"] == "same_arguments"
    assert emulator.server.readings == Readings(pagination="same_arguments")
    assert RATE_LIMIT in emulator.invoices(pageSize=1).headers
    assert emulator.server.set_readings(export_statuses="reports").export_statuses == "reports"
    bad = requests.post(
        emulator.server.url + "/_emulator/control",
        json={"readings": {"pagination": "sometimes"}},
        timeout=10,
    )
    assert bad.status_code == 400 and "pagination" in first_error(bad)["message"]
    assert emulator.server.readings.pagination == "same_arguments"


# --- pagination -------------------------------------------------------------------------------


def test_token_alone_accepts_a_lone_token_and_refuses_the_arguments(
    emulator: Emulator, dataset: Dataset
) -> None:
    first_call = {**WINDOW, "statuses": "AUTHORIZED", "sortOrder": "ASC", "pageSize": 3}
    first = emulator.invoices(**first_call).json()
    token = first["nextToken"]
    second = emulator.invoices(nextToken=token, pageSize=4)
    assert second.status_code == 200
    truth = dataset.invoices(*TRUTH_WINDOW, statuses=["AUTHORIZED"], sort_order="ASC")
    assert first["invoices"] + second.json()["invoices"] == truth[:7]
    same = {k: v for k, v in first_call.items() if k != "pageSize"}
    refused = emulator.invoices(nextToken=token, **same)
    assert refused.status_code == 400 and refused.json() == TOKEN_WITH_FILTERS
    # getInvoicesExports alike
    for _ in range(3):
        emulator.create_id("2024-07-02", "2024-07-02")
    listing = emulator.listing(pageSize=1, status="REQUESTED", dateStart="2024-07-20T00:00:00Z")
    exports_token = listing.json()["nextToken"]
    assert emulator.listing(nextToken=exports_token).status_code == 200
    again = emulator.listing(
        nextToken=exports_token, status="REQUESTED", dateStart="2024-07-20T00:00:00Z"
    )
    assert again.status_code == 400 and again.json() == TOKEN_WITH_FILTERS


def test_same_arguments_pages_invoices_with_the_first_calls_arguments(
    dataset: Dataset,
) -> None:
    with Emulator(dataset, readings=Readings(pagination="same_arguments")) as emulator:
        arguments = {**WINDOW, "statuses": "AUTHORIZED,CANCELED", "sortOrder": "ASC"}
        truth = dataset.invoices(
            *TRUTH_WINDOW, statuses=["AUTHORIZED", "CANCELED"], sort_order="ASC"
        )
        first = emulator.invoices(**arguments, pageSize=5).json()
        token = first["nextToken"]
        # the same arguments, a different pageSize, statuses repeated instead of comma-joined
        second = emulator.invoices(
            **{**arguments, "statuses": ["CANCELED", "AUTHORIZED"]}, nextToken=token, pageSize=7
        )
        assert second.status_code == 200, second.text
        assert first["invoices"] + second.json()["invoices"] == truth[:12]
        # and so on to the end: every page repeats the arguments of the first call
        collected, token = list(first["invoices"]), first["nextToken"]
        while token:
            page = emulator.invoices(**arguments, nextToken=token, pageSize=200).json()
            collected += page["invoices"]
            token = page.get("nextToken")
        assert collected == truth
        for sent in (
            {},  # the token alone
            {"dateStart": WINDOW["dateStart"]},  # some of them
            {**arguments, "dateEnd": "2024-07-05T00:00:00Z"},  # a different one
            {**arguments, "series": "1"},  # one more
            {k: v for k, v in arguments.items() if k != "sortOrder"},  # one fewer
        ):
            response = emulator.invoices(**sent, nextToken=first["nextToken"])
            assert response.status_code == 400, sent
            error = first_error(response)
            assert error["code"] == "InvalidInput"
            assert "same arguments as the call that produced it" in error["message"]
        details = first_error(emulator.invoices(nextToken=first["nextToken"]))["details"]
        assert "dateStart" in details and "statuses" in details
        assert emulator.invoices(nextToken="garbage!", **arguments).status_code == 400


def test_same_arguments_pages_exports_with_the_first_calls_arguments(dataset: Dataset) -> None:
    with Emulator(dataset, readings=Readings(pagination="same_arguments")) as emulator:
        created = [emulator.create_id("2024-07-02", "2024-07-02") for _ in range(5)]
        arguments = {"status": "REQUESTED", "dateStart": "2024-07-20T00:00:00Z"}
        first = emulator.listing(**arguments, pageSize=2).json()
        token = first["nextToken"]
        second = emulator.listing(**arguments, nextToken=token, pageSize=3)
        assert second.status_code == 200, second.text
        listed = [e["exportId"] for e in first["exports"] + second.json()["exports"]]
        assert listed == created
        for sent in ({}, {"status": "REQUESTED"}, {**arguments, "status": "DONE"}):
            response = emulator.listing(**sent, nextToken=token)
            assert response.status_code == 400, sent
            error = first_error(response)
            assert error["code"] == "InvalidInput"
            assert "same arguments as the call that produced it" in error["message"]
        # a first call without filters: marketplaceId and the token are all it takes
        plain = emulator.listing(pageSize=4).json()
        rest = emulator.listing(nextToken=plain["nextToken"])
        assert rest.status_code == 200 and len(rest.json()["exports"]) == 1


# --- export_dates -----------------------------------------------------------------------------


def test_export_dates_date_takes_days_and_refuses_date_times(
    emulator: Emulator, dataset: Dataset
) -> None:
    export_id = emulator.create_id("2024-07-02", "2024-07-03")
    export = emulator.server.exports.get(export_id)
    assert (export.date_start, export.date_end) == (date(2024, 7, 2), date(2024, 7, 3))
    assert export.window == (
        datetime(2024, 7, 2, tzinfo=UTC),
        datetime(2024, 7, 3, 23, 59, 59, 999999, tzinfo=UTC),
    )
    emulator.finish()
    assert emulator.zip_ids(export_id) == ids(dataset.export_invoices("2024-07-02", "2024-07-03"))
    for field in ("dateStart", "dateEnd"):
        body = {"dateStart": "2024-07-02", "dateEnd": "2024-07-03", field: "2024-07-02T00:00:00"}
        response = emulator.create(**body)
        assert response.status_code == 400
        error = first_error(response)
        assert error["code"] == "InvalidInput" and field in error["message"]
        assert "YYYY-MM-DD" in error["message"]


def test_export_dates_date_time_takes_instants_to_the_end_of_the_second() -> None:
    local = Dataset.generate(seed=5, start=START, days=4, invoices_per_day=5)
    inside = [
        local.add_invoice("2024-07-02T06:00:00.000Z")["id"],
        local.add_invoice("2024-07-02T18:29:59.500Z")["id"],  # within dateEnd's second
    ]
    outside = [
        local.add_invoice("2024-07-02T05:59:59.999Z")["id"],
        local.add_invoice("2024-07-02T18:30:00.000Z")["id"],
    ]
    with Emulator(local, readings=Readings(export_dates="date_time")) as emulator:
        body = {"dateStart": "2024-07-02T06:00:00", "dateEnd": "2024-07-02T18:29:59"}
        export_id = emulator.create_id(body["dateStart"], body["dateEnd"])
        export = emulator.server.exports.get(export_id)
        assert export.query == {"marketplaceId": MARKETPLACE_ID, **body}  # as sent
        assert (export.date_start, export.date_end) == (date(2024, 7, 2), date(2024, 7, 2))
        assert export.window == (
            datetime(2024, 7, 2, 6, tzinfo=UTC),
            datetime(2024, 7, 2, 18, 29, 59, 999999, tzinfo=UTC),
        )
        emulator.finish()
        found = emulator.zip_ids(export_id)
        truth = local.invoices("2024-07-02T06:00:00Z", "2024-07-02T18:29:59.999Z", sort_order="ASC")
        assert found == ids(truth)
        assert set(inside) <= set(found) and set(found).isdisjoint(outside)
        # the model's example body, and the same with a fraction and a Z
        assert emulator.create_id("2024-07-01T00:00:00", "2024-07-30T23:59:59")
        assert emulator.create_id("2024-07-01T00:00:00.000Z", "2024-07-03T23:59:59.999Z")
        for field in ("dateStart", "dateEnd"):
            for value in ("2024-07-02", "2024-07-02T06:00:00-03:00", "2024-07-02 06:00:00"):
                sent = {**body, field: value}
                response = emulator.create(**sent)
                assert response.status_code == 400, sent
                error = first_error(response)
                assert error["code"] == "InvalidInput" and field in error["message"]
                assert "YYYY-MM-DDTHH:MM:SS" in error["message"]
        backwards = emulator.create(dateStart="2024-07-03T00:00:00", dateEnd="2024-07-02T00:00:00")
        assert backwards.status_code == 400
        # without dates: the 24 hours before the request
        default_id = emulator.create().json()["exportId"]
        window = emulator.server.exports.get(default_id).window
        assert window is not None and window[1] - window[0] < timedelta(hours=24, seconds=1)
        assert window[0] == emulator.server.exports.get(default_id).created - timedelta(hours=24)


# --- export_statuses and the cancel_exports / odd_status faults -------------------------------


def walk(emulator: Emulator, export_id: str) -> list[str]:
    """The statuses an export shows: at once, processing, finished, much later."""
    seen = [emulator.export(export_id)["status"]]
    emulator.clock.advance(30)
    seen.append(emulator.export(export_id)["status"])
    emulator.finish()
    seen.append(emulator.export(export_id)["status"])
    emulator.clock.advance(1800)  # (access tokens live an hour)
    seen.append(emulator.export(export_id)["status"])
    return seen


def test_model_statuses_with_cancelled_and_odd_exports(emulator: Emulator) -> None:
    faults = emulator.server.faults
    faults.fail_exports(1, message="Boom", date_start="2024-07-04")
    faults.cancel_exports(1, date_start="2024-07-03")
    faults.odd_status("PAUSED")
    paused = emulator.create_id("2024-07-02", "2024-07-02")  # the odd status: any day
    done = emulator.create_id("2024-07-02", "2024-07-02")
    cancelled = emulator.create_id("2024-07-03", "2024-07-03")
    failed = emulator.create_id("2024-07-04", "2024-07-04")
    assert faults.snapshot()["cancel_exports"] == faults.snapshot()["odd_status"] == []
    assert walk(emulator, done) == ["REQUESTED", "PROCESSING", "DONE", "DONE"]
    assert {emulator.export(e)["status"] for e in (cancelled, failed)} == {"ERROR"}
    error = emulator.export(cancelled)
    assert "cancel" in error["errorMessage"].lower() and error["invoicesDocumentIds"] == []
    assert "generateExportFinishedAt" in error
    assert emulator.export(failed)["errorMessage"] == "Boom"
    odd = emulator.export(paused)
    assert odd == {
        "errorMessage": "",
        "exportId": paused,
        "invoicesDocumentIds": [],
        "status": "PAUSED",
    }

    def listed(**params: Any) -> list[str]:
        response = emulator.listing(**params)
        assert response.status_code == 200, response.text
        return [e["exportId"] for e in response.json()["exports"]]

    assert listed() == [paused, done, cancelled, failed]
    assert listed(status="ERROR") == [cancelled, failed]
    assert listed(status="DONE") == [done]
    assert sorted(EXPORT_STATUSES) == ["DONE", "ERROR", "PROCESSING", "REQUESTED"]
    for reports_only in ("FATAL", "CANCELLED", "IN_QUEUE", "PAUSED"):
        response = emulator.listing(status=reports_only)
        assert response.status_code == 400 and "status" in first_error(response)["message"]
    document_id = emulator.server.exports.get(paused).documents[0].document_id
    assert emulator.call("GET", f"/documents/{document_id}").status_code == 404


def test_reports_statuses_with_cancelled_and_odd_exports(dataset: Dataset) -> None:
    with Emulator(dataset, readings=Readings(export_statuses="reports")) as emulator:
        state = emulator.control(
            {
                "fail_exports": {"count": 1, "message": "Boom", "dateStart": "2024-07-04"},
                "cancel_exports": {"count": 1, "dateStart": "2024-07-03"},
                "odd_status": [{"status": "PAUSED", "dateStart": "2024-07-05"}],
            }
        )
        assert state["cancel_exports"] == [{"count": 1, "dateStart": "2024-07-03"}]
        assert state["odd_status"] == [{"status": "PAUSED", "count": 1, "dateStart": "2024-07-05"}]
        done = emulator.create_id("2024-07-02", "2024-07-02")
        cancelled = emulator.create_id("2024-07-03", "2024-07-03")
        failed = emulator.create_id("2024-07-04", "2024-07-04")
        paused = emulator.create_id("2024-07-05", "2024-07-05")
        assert emulator.control({})["cancel_exports"] == []
        assert emulator.export(done)["status"] == "IN_QUEUE"
        assert walk(emulator, done) == ["IN_QUEUE", "IN_PROGRESS", "DONE", "DONE"]
        assert emulator.export(done)["invoicesDocumentIds"]
        gone = emulator.export(cancelled)
        assert gone["status"] == "CANCELLED" and gone["invoicesDocumentIds"] == []
        fatal = emulator.export(failed)
        assert (fatal["status"], fatal["errorMessage"]) == ("FATAL", "Boom")
        assert emulator.export(paused)["status"] == "PAUSED"
        pending = emulator.create_id("2024-07-02", "2024-07-02")

        def listed(**params: Any) -> list[str]:
            response = emulator.listing(**params)
            assert response.status_code == 200, response.text
            return [e["exportId"] for e in response.json()["exports"]]

        assert listed(status="CANCELLED") == [cancelled]
        assert listed(status="FATAL") == [failed]
        assert listed(status="DONE") == [done]
        assert listed(status="IN_QUEUE") == [pending]
        emulator.clock.advance(6)
        assert listed(status="IN_PROGRESS") == [pending]
        assert [e["status"] for e in emulator.listing().json()["exports"]] == [
            "DONE",
            "CANCELLED",
            "FATAL",
            "PAUSED",
            "IN_PROGRESS",
        ]
        assert set(REPORTS_EXPORT_STATUSES) == {
            "IN_QUEUE",
            "IN_PROGRESS",
            "DONE",
            "FATAL",
            "CANCELLED",
        }
        for model_only in ("REQUESTED", "PROCESSING", "ERROR"):
            response = emulator.listing(status=model_only)
            assert response.status_code == 400 and "status" in first_error(response)["message"]
        # the same exports read under the model's names
        emulator.server.readings = Readings()
        assert emulator.export(cancelled)["status"] == "ERROR"
        assert emulator.export(failed)["status"] == "ERROR"
        assert emulator.export(pending)["status"] == "PROCESSING"


def test_cancel_and_odd_status_faults_count_reset_and_validate(emulator: Emulator) -> None:
    faults = emulator.server.faults
    faults.cancel_exports(2)
    faults.odd_status("PAUSED", 1, date_start="2024-07-06")
    snapshot = faults.snapshot()
    assert snapshot["cancel_exports"] == [{"count": 2, "dateStart": None}]
    assert snapshot["odd_status"] == [{"status": "PAUSED", "count": 1, "dateStart": "2024-07-06"}]
    first, second, third = (emulator.create_id("2024-07-02", "2024-07-02") for _ in range(3))
    emulator.finish()
    assert [emulator.export(e)["status"] for e in (first, second, third)] == [
        "ERROR",
        "ERROR",
        "DONE",
    ]
    assert faults.snapshot()["cancel_exports"] == []
    cleared = emulator.control({"reset_faults": True})
    assert cleared["odd_status"] == [] and cleared["cancel_exports"] == []
    assert emulator.export(emulator.create_id("2024-07-06", "2024-07-06"))["status"] == "REQUESTED"
    for bad in ({"odd_status": {"count": 1}}, {"cancel_exports": {"count": 0}}):
        response = requests.post(emulator.server.url + "/_emulator/control", json=bad, timeout=10)
        assert response.status_code == 400, bad
    with pytest.raises(ValueError):
        faults.odd_status("")
    with pytest.raises(ValueError):
        faults.cancel_exports(0)


# --- document_body ----------------------------------------------------------------------------


def test_xml_documents_are_one_invoice_each_named_by_its_id(dataset: Dataset) -> None:
    readings = Readings(document_body="xml")
    with Emulator(dataset, readings=readings, encoding_mix=True) as emulator:
        export_id = emulator.create_id("2024-07-02", "2024-07-02")
        emulator.finish()
        export = emulator.export(export_id)
        truth = ids(dataset.export_invoices("2024-07-02", "2024-07-02"))
        assert export["status"] == "DONE" and export["invoicesDocumentIds"] == truth
        encodings = set()
        for document_id in truth:
            url = emulator.url(document_id)
            assert urlsplit(url).path == f"/_s3/documents/{document_id}.xml"
            response = requests.get(url, timeout=10)
            assert response.status_code == 200
            assert response.headers["Content-Type"] == "application/xml"
            assert int(response.headers["Content-Length"]) == len(response.content)
            assert document_id in response.headers["Content-Disposition"]
            encoding = encoding_for(document_id)
            assert response.content == dataset.nfe_xml(document_id, encoding)
            encodings.add(encoding)
        assert len(encodings) > 1  # encoding_mix reaches xml documents too
        # the same invoice in a second export: the document id is the invoice id again
        again = emulator.create_id("2024-07-02", "2024-07-02")
        assert requests.get(emulator.url(truth[0]), timeout=10).status_code == 200  # 1st DONE
        emulator.finish()
        assert emulator.export(again)["invoicesDocumentIds"] == truth
        # the zip path of an xml document does not exist
        url = emulator.url(truth[0])
        wrong = requests.get(url.replace(".xml?", ".zip?"), timeout=10)
        assert wrong.status_code == 404


def test_xml_documents_expire_and_break_like_zips(dataset: Dataset) -> None:
    with Emulator(dataset, readings=Readings(document_body="xml")) as emulator:
        export_id = emulator.create_id("2024-07-03", "2024-07-03")
        emulator.finish()
        document_id = emulator.export(export_id)["invoicesDocumentIds"][0]
        whole = dataset.nfe_xml(document_id)
        url = emulator.url(document_id)
        emulator.clock.advance(31)
        expired = requests.get(url, timeout=10)
        assert expired.status_code == 403 and b"Request has expired" in expired.content
        tampered = emulator.url(document_id).replace(document_id, "x" + document_id[1:])
        assert requests.get(tampered, timeout=10).status_code == 403
        emulator.server.faults.truncate_downloads(1)
        truncated = requests.get(emulator.url(document_id), timeout=10)
        assert truncated.status_code == 200
        assert truncated.content == whole[: len(whole) // 2]
        assert int(truncated.headers["Content-Length"]) == len(whole) // 2
        emulator.control({"drop_downloads": 1})
        with pytest.raises(requests.exceptions.RequestException):
            requests.get(emulator.url(document_id), timeout=10)
        assert requests.get(emulator.url(document_id), timeout=10).content == whole


def test_zip_documents_by_default(emulator: Emulator, dataset: Dataset) -> None:
    export_id = emulator.create_id("2024-07-02", "2024-07-02")
    emulator.finish()
    document_id = emulator.export(export_id)["invoicesDocumentIds"][0]
    assert document_id not in {i["id"] for i in dataset.invoices()}
    url = emulator.url(document_id)
    assert urlsplit(url).path == f"/_s3/documents/{document_id}.zip"
    response = requests.get(url, timeout=10)
    assert response.headers["Content-Type"] == "application/zip"
    assert emulator.zip_ids(export_id) == ids(dataset.export_invoices("2024-07-02", "2024-07-02"))


# --- rate_limit_header -------------------------------------------------------------------------


@pytest.mark.parametrize("header", [True, False])
def test_rate_limit_header_switch(dataset: Dataset, header: bool) -> None:
    fast = {k: v for k, v in FAST.items() if k != "createInvoicesExport"}
    readings = Readings(rate_limit_header=header)
    with Emulator(dataset, readings=readings, rate_overrides=fast) as emulator:
        answers = [
            emulator.invoices(pageSize=1),  # 200
            emulator.invoices(pageSize=0),  # 400
            emulator.call(
                "GET", "/invoices/no-such-invoice", params={"marketplaceId": MARKETPLACE_ID}
            ),
            emulator.create(dateStart="2024-07-02", dateEnd="2024-07-02"),  # 202
            emulator.create(dateStart="2024-07-02", dateEnd="2024-07-02"),  # 429: burst 1
        ]
        assert [a.status_code for a in answers] == [200, 400, 404, 202, 429]
        assert all((RATE_LIMIT in a.headers) is header for a in answers)
        assert all(a.headers["x-amzn-RequestId"] for a in answers)
        emulator.clock.advance(6)  # 0.167 req/s: one token after 6 s
        assert emulator.create(dateStart="2024-07-02", dateEnd="2024-07-02").status_code == 202


# --- invoice_filter_date -----------------------------------------------------------------------


def late_invoice(dataset: Dataset) -> tuple[dict[str, Any], datetime]:
    """An invoice created on a later UTC day than its date, and its creation time."""
    for invoice in dataset.invoices(sort_order="ASC"):
        created = dataset.created_at(invoice["id"])
        issued = datetime.fromisoformat(invoice["date"])
        if created.date() != issued.date() and created.date() < date(2024, 7, 6):
            return invoice, created
    raise AssertionError("no invoice created on another day")


def day_window(day: date) -> dict[str, str]:
    return {"dateStart": f"{day}T00:00:00Z", "dateEnd": f"{day}T23:59:59.999Z", "pageSize": "200"}


def test_creation_times_are_deterministic_and_mostly_the_date(dataset: Dataset) -> None:
    records = dataset.records()
    late = [r for r in records if dataset.created_at(r.id) != r.date]
    assert 0.15 < len(late) / len(records) < 0.35  # about one in four
    for record in late:
        delay = dataset.created_at(record.id) - record.date
        assert timedelta(hours=1) <= delay <= timedelta(hours=36)
    assert any(dataset.created_at(r.id).date() != r.date.date() for r in late)
    again = Dataset.generate(seed=21, start=START, days=6, invoices_per_day=(20, 60))
    assert all(again.created_at(r.id) == dataset.created_at(r.id) for r in records)
    with EmulatorServer(dataset) as server:
        assert server.creation_time(late[0].id) == dataset.created_at(late[0].id)


def test_creation_reading_filters_and_pages_on_the_creation_time(dataset: Dataset) -> None:
    invoice, created = late_invoice(dataset)
    issued_day = datetime.fromisoformat(invoice["date"]).date()
    with Emulator(dataset, readings=Readings(invoice_filter_date="creation")) as emulator:
        on_creation_day = emulator.invoices(**day_window(created.date())).json()["invoices"]
        assert invoice in on_creation_day  # the record still shows its date
        on_date_day = emulator.invoices(**day_window(issued_day)).json()["invoices"]
        assert invoice["id"] not in ids(on_date_day)
        assert on_creation_day == dataset.invoices(
            f"{created.date()}T00:00:00Z", f"{created.date()}T23:59:59.999Z", by="creation"
        )
        # pages follow the creation order, ascending and descending
        for order in ("ASC", "DESC"):
            collected: list[dict[str, Any]] = []
            page = emulator.invoices(**WINDOW, pageSize=7, sortOrder=order).json()
            collected += page["invoices"]
            while "nextToken" in page:
                page = emulator.invoices(nextToken=page["nextToken"]).json()
                collected += page["invoices"]
            truth = dataset.invoices(*TRUTH_WINDOW, sort_order=order, by="creation")
            assert collected == truth and len(truth) > 100
            assert collected != dataset.invoices(*TRUTH_WINDOW, sort_order=order)
        # exports select on the creation time too
        export_id = emulator.create_id(str(created.date()), str(created.date()))
        emulator.finish()
        found = emulator.zip_ids(export_id)
        assert invoice["id"] in found
        assert found == ids(dataset.export_invoices(created.date(), created.date(), by="creation"))
        other = emulator.create_id(str(issued_day), str(issued_day))
        emulator.finish()
        assert invoice["id"] not in emulator.zip_ids(other)


def test_date_reading_filters_on_the_records_date(emulator: Emulator, dataset: Dataset) -> None:
    invoice, created = late_invoice(dataset)
    issued_day = datetime.fromisoformat(invoice["date"]).date()
    assert invoice in emulator.invoices(**day_window(issued_day)).json()["invoices"]
    on_creation_day = emulator.invoices(**day_window(created.date())).json()["invoices"]
    assert invoice["id"] not in ids(on_creation_day)


# --- bare_date_zone ----------------------------------------------------------------------------


def boundary_dataset() -> tuple[Dataset, dict[str, str]]:
    """A data set with invoices either side of UTC and of Brazil's midnights of 2 July."""
    local = Dataset.generate(seed=9, start=START, days=4, invoices_per_day=3)
    added = {
        "utc_1_jul_brt_30_jun": "2024-07-01T02:59:59.999Z",
        "utc_2_jul_brt_1_jul": "2024-07-02T02:59:59.999Z",
        "utc_2_jul_brt_2_jul": "2024-07-02T03:00:00.000Z",
        "utc_3_jul_brt_2_jul": "2024-07-03T02:59:59.999Z",
        "utc_3_jul_brt_3_jul": "2024-07-03T03:00:00.000Z",
    }
    return local, {name: local.add_invoice(moment)["id"] for name, moment in added.items()}


@pytest.mark.parametrize(
    ("zone", "inside", "outside"),
    [
        (
            "UTC",
            {"utc_2_jul_brt_1_jul", "utc_2_jul_brt_2_jul"},
            {"utc_1_jul_brt_30_jun", "utc_3_jul_brt_2_jul", "utc_3_jul_brt_3_jul"},
        ),
        (
            "America/Sao_Paulo",
            {"utc_2_jul_brt_2_jul", "utc_3_jul_brt_2_jul"},
            {"utc_1_jul_brt_30_jun", "utc_2_jul_brt_1_jul", "utc_3_jul_brt_3_jul"},
        ),
    ],
)
def test_bare_dates_are_days_of_the_zone(zone: str, inside: set[str], outside: set[str]) -> None:
    local, added = boundary_dataset()
    with Emulator(local, readings=Readings(bare_date_zone=zone)) as emulator:
        export_id = emulator.create_id("2024-07-02", "2024-07-02")
        export = emulator.server.exports.get(export_id)
        low = datetime(2024, 7, 2, tzinfo=UTC) + (
            timedelta(hours=3) if zone != "UTC" else timedelta()
        )
        assert export.window == (low, low + timedelta(days=1, microseconds=-1))
        assert (export.date_start, export.date_end) == (date(2024, 7, 2), date(2024, 7, 2))
        emulator.finish()
        found = set(emulator.zip_ids(export_id))
        assert {added[name] for name in inside} <= found
        assert found.isdisjoint(added[name] for name in outside)
        tz = UTC if zone == "UTC" else timezone(timedelta(hours=-3))
        assert sorted(found) == sorted(
            ids(local.export_invoices("2024-07-02", "2024-07-02", zone=tz))
        )
        # without dates: yesterday and today of the zone (12:00 UTC is 09:00 in Brazil)
        default_id = emulator.create().json()["exportId"]
        created = emulator.server.exports.get(default_id)
        assert (created.date_start, created.date_end) == (date(2024, 7, 19), date(2024, 7, 20))


def test_bare_date_zone_does_not_touch_date_times() -> None:
    local, added = boundary_dataset()
    readings = Readings(export_dates="date_time", bare_date_zone="America/Sao_Paulo")
    with Emulator(local, readings=readings) as emulator:
        export_id = emulator.create_id("2024-07-02T00:00:00", "2024-07-02T23:59:59")
        emulator.finish()
        found = set(emulator.zip_ids(export_id))
        assert {added["utc_2_jul_brt_1_jul"], added["utc_2_jul_brt_2_jul"]} <= found
        assert added["utc_3_jul_brt_2_jul"] not in found
