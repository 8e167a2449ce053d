"""Staging invoice files for Airbyte's file transfer: when files are asked for, where each lands,
that no name leaves the staging folder, that a referenced file is always whole, and that a bad
staging folder is one config error naming it."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from airbyte_cdk.models import (
    AirbyteStream,
    ConfiguredAirbyteCatalog,
    ConfiguredAirbyteStream,
    DestinationSyncMode,
    FailureType,
    SyncMode,
)
from airbyte_cdk.test.entrypoint_wrapper import discover, read
from airbyte_cdk.utils.traced_exception import AirbyteTracedException

from conftest import validate_records
from source_sp_invoices import SourceSpInvoices
from source_sp_invoices import source as source_module
from source_sp_invoices.config import ConfigError, parse_config
from source_sp_invoices.export_pipeline import file_staging
from source_sp_invoices.export_pipeline.file_staging import (
    LOCK_NAME,
    PARTIAL,
    RUN_PREFIX,
    FileStager,
    files_asked_for,
    relative_path,
    safe_name,
    staging_root,
)
from sp_api_emulator import nfe_xml
from unit_tests.conftest import make_config
from unit_tests.test_document_pass import DATASET, DOCUMENT_STREAMS, NfeAmazon, invoices_of
from unit_tests.test_run import failure
from unit_tests.test_streams_exports import config_for, no_waiting  # noqa: F401

KEY = "35240712345678000190550010000012341000012345"  # 44 digits
OTHER_KEY = "35240712345678000190550010000012351000012346"
LOGGER = logging.getLogger("test_file_staging")


def nfe(key: Any = KEY, issued: Any = "2024-07-31T22:30:00-03:00", protocol: bool = True):
    """The header columns the naming reads of an NF-e."""
    return {
        "documentType": "nfe",
        "accessKey": key,
        "issuedAt": issued,
        "protocolStatusCode": "100" if protocol else None,
    }


def event(
    key: Any = KEY,
    kind: Any = "110111",
    sequence: Any = 1,
    at: Any = "2024-08-02T10:00:00-03:00",
    registered: bool = True,
):
    """The header columns the naming reads of an NF-e event."""
    return {
        "documentType": "event",
        "accessKey": None,
        "eventAccessKey": key,
        "eventType": kind,
        "eventSequence": sequence,
        "eventAt": at,
        "eventStatusCode": "135" if registered else None,
    }


def configured(include_files: bool | None) -> ConfiguredAirbyteStream:
    stream = AirbyteStream(
        name="invoice_documents", json_schema={}, supported_sync_modes=[SyncMode.incremental]
    )
    return ConfiguredAirbyteStream(
        stream=stream,
        sync_mode=SyncMode.incremental,
        destination_sync_mode=DestinationSyncMode.append,
        include_files=include_files,
    )


# --- when files are asked for -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("include_files", "delivery", "environ", "why"),
    [
        (None, None, {}, None),
        (False, None, {}, None),
        (True, None, {}, "the catalog's include_files"),
        (None, "use_file_transfer", {}, "delivery_method Copy Raw Files"),
        (False, "use_file_transfer", {}, "delivery_method Copy Raw Files"),
        (None, "use_records_transfer", {}, None),
        (None, None, {"USE_FILE_TRANSFER": "true"}, "USE_FILE_TRANSFER=true"),
        (None, None, {"USE_FILE_TRANSFER": " TRUE "}, "USE_FILE_TRANSFER=true"),
        (None, None, {"USE_FILE_TRANSFER": "false"}, None),
        (None, None, {"USE_FILE_TRANSFER": "1"}, None),
        (True, "use_file_transfer", {"USE_FILE_TRANSFER": "true"}, "the catalog's include_files"),
    ],
)
def test_files_are_asked_for_by_include_files_the_delivery_method_or_the_platform(
    include_files, delivery, environ, why
):
    method = {"delivery_type": delivery} if delivery else None
    config = parse_config(make_config(delivery_method=method))
    assert files_asked_for(config, configured(include_files), environ) == why


# --- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # The month is the issue's, as written in Brazil's time (31 July 22:30 is 1 August UTC).
        (nfe(), f"2024/07/{KEY}-procNFe.xml"),
        (nfe(issued="2024-12-01"), f"2024/12/{KEY}-procNFe.xml"),  # a bare date (dEmi-like)
        (nfe(protocol=False), f"2024/07/{KEY}-NFe.xml"),  # not authorized: no "proc"
        (event(), f"2024/08/{KEY}-110111-01-procEventoNFe.xml"),
        (event(kind="110110", sequence=12), f"2024/08/{KEY}-110110-12-procEventoNFe.xml"),
        (event(registered=False), f"2024/08/{KEY}-110111-01-evento.xml"),
    ],
)
def test_an_nfe_or_event_is_named_by_its_month_and_access_key(header, expected):
    assert relative_path("INV-1", header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,  # parse_nfe off, or a file that is not a readable NF-e
        {},
        {"documentType": "cte", "accessKey": KEY, "issuedAt": "2024-07-01T00:00:00-03:00"},
        nfe(key=KEY[:-1]),  # 43 digits
        nfe(key=KEY + "0"),  # 45 digits
        nfe(key="NFe" + KEY[3:]),
        nfe(key="../../../../etc/passwd" + "0" * 22),
        nfe(key="３５" + KEY[2:]),  # full-width digits are digits to str.isdigit, not here
        nfe(key=None),
        nfe(key=int(KEY)),
        nfe(issued=None),
        nfe(issued="2024-13-01T00:00:00-03:00"),
        nfe(issued="24-07-01T00:00:00-03:00"),
        nfe(issued="../2024-07-01"),
        event(key=None),
        event(key=KEY[:40]),
        event(kind="11011"),
        event(kind="../../x"),
        event(kind=None),
        event(sequence=0),
        event(sequence=100),
        event(sequence="1"),
        event(sequence=True),
        event(sequence=None),
        event(at=None),
    ],
)
def test_anything_else_is_named_by_its_invoice_id(header):
    assert relative_path("INV-1", header) == "by-invoice-id/INV-1.xml"


HOSTILE_IDS = [
    "../x",
    "../../../../etc/passwd",
    "/etc/passwd",
    "..",
    ".",
    "",
    ".hidden",
    "a/b/../../c",
    "..\\..\\windows\\system32",
    "C:\\evil",
    "nul\x00byte",
    "line\nbreak",
    "nota-fiscal-ção",
    "x" * 300,
    "~",
    "-",
]


@pytest.mark.parametrize("invoice_id", HOSTILE_IDS)
def test_an_invoice_id_becomes_one_harmless_file_name(invoice_id, tmp_path):
    name = safe_name(invoice_id)
    assert name and not name.startswith(".") and name not in (".", "..")
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    assert len(name.encode()) <= 100
    relative = relative_path(invoice_id, None)
    assert (tmp_path / relative).resolve().parent == (tmp_path / "by-invoice-id").resolve()


def test_long_or_rewritten_ids_stay_apart():
    assert safe_name("x" * 300) != safe_name("x" * 299 + "y")
    assert safe_name("A-1.2_b") == "A-1.2_b"  # an ordinary ID is kept as it is


# --- the staging folder ---------------------------------------------------------------------------


def test_the_platforms_staging_folder_is_taken_as_named(tmp_path):
    missing = tmp_path / "not-mounted"
    root = staging_root({"AIRBYTE_STAGING_DIRECTORY": str(missing)}, default=lambda: "/nowhere")
    assert root == missing and not missing.exists()  # never created: mounting it is Airbyte's


def test_without_a_name_the_cdks_folder_is_taken_and_created(tmp_path):
    local = tmp_path / "airbyte-file-transfer"
    assert staging_root({}, default=lambda: str(local)) == local
    assert local.is_dir()


def refusal(root: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        FileStager(root, "delivery_method Copy Raw Files", LOGGER)
    assert caught.value.failure_type == FailureType.config_error
    return caught.value.message


def test_a_missing_staging_folder_is_a_config_error_naming_it(tmp_path):
    message = refusal(tmp_path / "staging")
    assert message.startswith(
        "Invoice files were asked for (delivery_method Copy Raw Files), but the staging folder "
        f"{tmp_path / 'staging'} (AIRBYTE_STAGING_DIRECTORY) does not exist: "
    )


def test_a_staging_folder_the_connector_cannot_write_to_is_a_config_error_naming_it(
    tmp_path, monkeypatch
):
    """As a non-root user meets it (the next test), whoever runs the tests."""
    root = tmp_path / "staging"
    root.mkdir()

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "mkdir", refused)
    assert f"{root} (AIRBYTE_STAGING_DIRECTORY) is not writable (Permission denied): the " in (
        refusal(root)
    )


def test_a_staging_path_that_is_a_file_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "staging").write_text("")
    assert f"{tmp_path / 'staging'} (AIRBYTE_STAGING_DIRECTORY) is not a folder" in refusal(
        tmp_path / "staging"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_a_staging_folder_that_is_not_writable_is_a_config_error_naming_it(tmp_path):
    root = tmp_path / "staging"
    root.mkdir(mode=0o555)
    try:
        message = refusal(root)
    finally:
        root.chmod(0o755)
    assert f"{root} (AIRBYTE_STAGING_DIRECTORY) is not writable (Permission denied)" in message


@pytest.fixture
def stager(tmp_path) -> FileStager:
    root = tmp_path / "staging"
    root.mkdir()
    return FileStager(root, "the catalog's include_files", LOGGER)


def test_a_file_is_staged_byte_for_byte_under_this_syncs_folder(stager, tmp_path):
    data = b"\xef\xbb\xbf<?xml version='1.0' encoding='ISO-8859-1'?><nfeProc>\xe7\xe3o</nfeProc>"
    reference = stager.stage("INV-1", data, nfe())
    path = Path(reference.staging_file_url)
    assert path.read_bytes() == data
    assert reference.file_size_bytes == len(data)
    assert reference.source_file_relative_path == f"2024/07/{KEY}-procNFe.xml"
    assert path == stager.folder / reference.source_file_relative_path
    assert stager.folder.parent == tmp_path / "staging"
    assert stager.folder.name.startswith(RUN_PREFIX)
    assert not list(stager.folder.rglob(f"*{PARTIAL}"))


def test_a_relative_staging_folder_is_referenced_by_its_absolute_path(tmp_path, monkeypatch):
    (tmp_path / "staging").mkdir()
    monkeypatch.chdir(tmp_path)
    reference = FileStager(Path("staging"), "why", LOGGER).stage("INV-1", b"<x/>", None)
    assert reference.staging_file_url.startswith(f"{tmp_path}/staging/{RUN_PREFIX}")


def test_a_staged_file_is_readable_by_the_destination_as_another_user(stager):
    umask = os.umask(0o022)
    os.umask(umask)
    path = Path(stager.stage("INV-1", b"<x/>", None).staging_file_url)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_two_syncs_never_share_a_staged_file(tmp_path):
    root = tmp_path / "staging"
    root.mkdir()
    first = FileStager(root, "why", LOGGER).stage("INV-1", b"<a/>", nfe())
    second = FileStager(root, "why", LOGGER).stage("INV-1", b"<b/>", nfe())
    assert first.source_file_relative_path == second.source_file_relative_path
    assert first.staging_file_url != second.staging_file_url
    assert Path(first.staging_file_url).read_bytes() == b"<a/>"


def test_no_two_records_of_a_sync_map_to_the_same_path(stager):
    references = [
        stager.stage("INV-1", b"1", nfe()),
        stager.stage("INV-2", b"2", nfe()),  # another invoice holding the same NF-e
        stager.stage("INV-2", b"3", nfe()),  # and the same invoice read again
        stager.stage("INV-3", b"4", nfe(key=OTHER_KEY)),
        stager.stage("a/b", b"5", None),  # two IDs that read the same as file names
        stager.stage("a_b", b"6", None),
        stager.stage("a_b", b"7", None),
    ]
    paths = [r.source_file_relative_path for r in references]
    assert paths == [
        f"2024/07/{KEY}-procNFe.xml",
        f"2024/07/{KEY}-procNFe-INV-2.xml",
        f"2024/07/{KEY}-procNFe-INV-2-2.xml",
        f"2024/07/{OTHER_KEY}-procNFe.xml",
        "by-invoice-id/a_b.xml",
        "by-invoice-id/a_b-2.xml",
        "by-invoice-id/a_b-3.xml",
    ]
    assert [Path(r.staging_file_url).read_bytes() for r in references] == [
        str(n).encode() for n in range(1, 8)
    ]


@pytest.mark.parametrize("invoice_id", HOSTILE_IDS)
def test_a_hostile_invoice_id_is_staged_inside_the_staging_folder(stager, invoice_id, tmp_path):
    reference = stager.stage(invoice_id, b"<not-an-nfe/>", None)
    path = Path(reference.staging_file_url)
    assert path.resolve().is_relative_to(stager.folder.resolve())
    assert path.read_bytes() == b"<not-an-nfe/>"
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "staging")]
    assert outside == []


def test_a_folder_that_resolves_outside_is_refused_and_nothing_is_written_there(stager, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (stager.folder / "2024").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(AirbyteTracedException) as caught:
        stager.stage("INV-1", b"<x/>", nfe())
    assert caught.value.failure_type == FailureType.system_error
    assert caught.value.message.startswith("Could not stage the file of invoice INV-1 as ")
    assert "2024 is a link or not a folder (no file may land outside the staging folder)" in (
        caught.value.message
    )
    assert list(elsewhere.rglob("*")) == []


def test_a_failed_write_leaves_neither_the_file_nor_its_partial(stager, monkeypatch):
    def no_space(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(file_staging.os, "replace", no_space)
    with pytest.raises(AirbyteTracedException) as caught:
        stager.stage("INV-1", b"<x/>", nfe())
    assert "No space left on device. The document is read again by the next sync" in (
        caught.value.message
    )
    assert [p for p in stager.folder.rglob("*") if p.is_file()] == [stager.folder / LOCK_NAME]


def killed_sync(root: Path, name: str = "dead") -> Path:
    """The folder of a sync killed while it wrote a file: a whole file, a partial one."""
    folder = root / f"{RUN_PREFIX}{name}"
    (folder / "2024" / "07").mkdir(parents=True)
    (folder / LOCK_NAME).write_text("")
    (folder / "2024" / "07" / "whole.xml").write_bytes(b"<whole/>")
    (folder / "2024" / "07" / f"half.xml{PARTIAL}").write_bytes(b"<ha")
    return folder


def test_partial_files_of_a_killed_sync_are_removed_and_its_whole_files_kept(tmp_path, caplog):
    root = tmp_path / "staging"
    root.mkdir()
    dead = killed_sync(root)
    other = root / "someone-elses"  # not a folder of this connector's: left alone
    other.mkdir()
    (other / f"x{PARTIAL}").write_text("")
    with caplog.at_level(logging.INFO):
        FileStager(root, "why", LOGGER)
    assert not (dead / "2024" / "07" / f"half.xml{PARTIAL}").exists()
    assert (dead / "2024" / "07" / "whole.xml").read_bytes() == b"<whole/>"
    assert (other / f"x{PARTIAL}").exists()
    assert f"Removed 1 partial file(s) that a killed sync left in {root}" in caplog.text


def test_partial_files_of_a_sync_still_running_are_left_alone(tmp_path):
    root = tmp_path / "staging"
    root.mkdir()
    running = killed_sync(root, "running")
    lock = os.open(running / LOCK_NAME, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        FileStager(root, "why", LOGGER)
    finally:
        os.close(lock)
    assert (running / "2024" / "07" / f"half.xml{PARTIAL}").exists()


def test_a_sync_that_ended_frees_its_folder_for_cleaning(tmp_path):
    root = tmp_path / "staging"
    root.mkdir()
    first = FileStager(root, "why", LOGGER)
    (first.folder / f"x.xml{PARTIAL}").write_text("")
    FileStager(root, "why", LOGGER)  # the first still runs: its partial file stays
    assert (first.folder / f"x.xml{PARTIAL}").exists()
    first.close()
    FileStager(root, "why", LOGGER)
    assert not (first.folder / f"x.xml{PARTIAL}").exists()


# --- a read with files, in-process ---------------------------------------------------------------


def files_catalog(*streams: str, include_files: bool | None = True) -> ConfiguredAirbyteCatalog:
    return ConfiguredAirbyteCatalog(
        streams=[
            ConfiguredAirbyteStream(
                stream=AirbyteStream(
                    name=name, json_schema={}, supported_sync_modes=[SyncMode.incremental]
                ),
                sync_mode=SyncMode.incremental,
                destination_sync_mode=DestinationSyncMode.append,
                include_files=include_files if name == "invoice_documents" else None,
            )
            for name in streams
        ]
    )


@pytest.fixture
def staging(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "staging"
    root.mkdir()
    monkeypatch.setenv("AIRBYTE_STAGING_DIRECTORY", str(root))
    monkeypatch.delenv("USE_FILE_TRANSFER", raising=False)
    return root


def test_discover_says_invoice_documents_is_a_stream_of_files(config):
    streams = {s.name: s for s in discover(SourceSpInvoices(), config).catalog.catalog.streams}
    assert streams["invoice_documents"].is_file_based is True
    assert [name for name, s in streams.items() if s.is_file_based] == ["invoice_documents"]


@pytest.mark.parametrize("keep", [False, True])
def test_each_document_record_references_its_file_and_items_stay_records(
    lwa, requests_mock, config, staging, keep
):
    amazon = NfeAmazon(requests_mock, [], documents_per_export=2)
    config = {**config_for(config, "2024-01-03"), "keep_xml_column": keep}
    output = read(SourceSpInvoices(), config, files_catalog(*DOCUMENT_STREAMS))
    assert not output.errors
    messages = [m.record for m in output.records]
    documents = [r for r in messages if r.stream == "invoice_documents"]
    assert sorted(r.data["invoiceId"] for r in documents) == sorted(
        invoices_of("2024-01-01", "2024-01-02")
    )
    validate_records("invoice_documents", [r.data for r in documents])
    for record in documents:
        data = nfe_xml.render(DATASET.record(record.data["invoiceId"]))
        reference = record.file_reference
        assert Path(reference.staging_file_url).read_bytes() == data
        assert reference.file_size_bytes == len(data)
        issued = record.data["issuedAt"]
        assert reference.source_file_relative_path == (
            f"{issued[:4]}/{issued[5:7]}/{record.data['accessKey']}-procNFe.xml"
        )
        assert ("xml" in record.data) is keep
        assert record.data.get("xml", data.decode()) == data.decode()
    assert all(r.file_reference is None for r in messages if r.stream == "invoice_items")
    assert amazon.s3.call_count == 4


def test_without_files_asked_for_nothing_is_staged_and_records_keep_the_xml(
    lwa, requests_mock, config, staging
):
    NfeAmazon(requests_mock, [])
    output = read(
        SourceSpInvoices(),
        config_for(config, "2024-01-02"),
        files_catalog(*DOCUMENT_STREAMS, include_files=False),
    )
    assert not output.errors and output.records
    assert all(m.record.file_reference is None for m in output.records)
    assert all(
        "xml" in m.record.data for m in output.records if m.record.stream == "invoice_documents"
    )
    assert list(staging.iterdir()) == []


@pytest.mark.parametrize("catalog", ["invoice_documents", "all five"])
def test_read_refuses_a_missing_staging_folder_before_any_stream_starts(
    tmp_path, capfd, requests_mock, monkeypatch, catalog
):
    missing = tmp_path / "not-mounted"
    monkeypatch.setenv("AIRBYTE_STAGING_DIRECTORY", str(missing))
    config = make_config(delivery_method={"delivery_type": "use_file_transfer"})
    message, _ = failure(tmp_path, capfd, f"read {catalog}", config)
    assert message.startswith(
        "Invoice files were asked for (delivery_method Copy Raw Files), but the staging folder "
        f"{missing} (AIRBYTE_STAGING_DIRECTORY) does not exist: "
    )
    assert requests_mock.call_count == 0 and not missing.exists()


def test_a_missing_staging_folder_does_not_matter_when_invoice_documents_is_not_read(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("AIRBYTE_STAGING_DIRECTORY", str(tmp_path / "not-mounted"))
    config = parse_config(make_config(delivery_method={"delivery_type": "use_file_transfer"}))
    catalog = files_catalog("invoice_items")
    assert source_module._file_stager(config, catalog, LOGGER) is None
