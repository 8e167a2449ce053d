"""The invoice files through Airbyte's file transfer: the installed CLI reads every stream from the
emulator, and each staged file is compared with the bytes the emulator served for its invoice.

Files are asked for the two ways the platform asks: the catalog's `include_files` (Airbyte 1.7
and later) and the config's delivery_method Copy Raw Files with USE_FILE_TRANSFER=true (older
platforms, and any connector outside Airbyte's registry). The data set mixes the generated
variants of a file (UTF-8, UTF-8 with a byte-order mark, ISO-8859-1, and `nfe:` prefixes), then
the real NF-e and events of ../shared/nfe-samples, entries with hostile names, a sync killed and
resumed, a state 0.5.0 wrote, and the XML-body reading of the model. Names are checked against
what the emulator (or lxml, for the corpus) says of each file, never against the connector's
own columns.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from integration_tests.conftest import (
    ALL_STREAMS,
    TIME_SCALE,
    Cli,
    CliRun,
    catalog,
    parse_messages,
    quick_server,
    state_of,
)
from integration_tests.test_nfe_corpus import (
    ABSENT,
    FILES,
    lacks_item_numbers,
    root_of,
    serving_corpus,
)
from sp_api_emulator import Dataset, EmulatorServer, Readings, nfe_xml
from sp_api_emulator.models import BRAZIL_TZ

NS = "http://www.portalfiscal.inf.br/nfe"
START, END = "2024-01-01T00:00:00Z", "2024-01-04T00:00:00Z"  # whole days 01..03
FIRST_DAYS = ("2024-01-01", "2024-01-03")
PREFIXED = 3  # the first invoices of the data set are served with `nfe:` prefixes
# ZIP entry names a file name must never be taken from (the invoice ID is the name less its
# folders and .xml: `x`, `evil`, `..\\..\\windows`, `b`, `...`).
HOSTILE_NAMES = ("../x.xml", "/etc/evil.xml", "..\\..\\windows.xml", "a/../../b.xml", "....xml")
# The same on files that are no NF-e, and where the docs say they land: under the invoice ID,
# anything but letters, digits, `_`, `-` and `.` as `_`, and a leading dot too.
UNREADABLE_NAMES = {
    "../y.xml": "by-invoice-id/y.xml",
    "/etc/passwd.xml": "by-invoice-id/passwd.xml",
    "..\\..\\z.xml": "by-invoice-id/_._.._z.xml",
    "c/../../d.xml": "by-invoice-id/d.xml",
    "...xml": "by-invoice-id/_..xml",
}
CLIMBING_KEY = b"../../../../../tmp/e" + b"0" * 24  # 44 characters, not 44 digits


def make_dataset() -> Dataset:
    return Dataset.generate(seed=26, start=date(2024, 1, 1), days=3, invoices_per_day=(8, 14))


def prefixed(data: bytes) -> bytes:
    """A UTF-8 NF-e of the emulator written with the `nfe:` prefix on every NF-e element (its
    signature keeps the XML-DSig default namespace), as some emitters write it."""
    text = data.decode("utf-8")
    start, end = text.index("<Signature"), text.index("</Signature>") + len("</Signature>")

    def qualify(part: str) -> str:
        part = re.sub(r"<(/?)([A-Za-z][\w.-]*)", r"<\1nfe:\2", part)
        return part.replace(f'xmlns="{NS}"', f'xmlns:nfe="{NS}"')

    return (qualify(text[:start]) + text[start:end] + qualify(text[end:])).encode("utf-8")


def files_catalog(include_files: bool) -> dict[str, Any]:
    """Every stream; invoice_documents with the files asked for or not."""
    configured = catalog(*ALL_STREAMS)
    for stream in configured["streams"]:
        if stream["stream"]["name"] == "invoice_documents":
            stream["include_files"] = include_files
    return configured


def served(emulator: EmulatorServer, invoice_id: str) -> bytes:
    """The bytes the emulator's documents hold for an invoice: a file given to it, or the
    invoice's generated NF-e in the encoding the mix picks."""
    given = emulator.xml_files.get(invoice_id)
    if given is not None:
        return given
    encoding = nfe_xml.encoding_for(invoice_id) if emulator.encoding_mix else nfe_xml.UTF8
    return emulator.dataset.nfe_xml(invoice_id, encoding)


def expected_name(dataset: Dataset, invoice_id: str) -> str:
    """Where the docs say a generated NF-e lands: its Brazilian issue month and access key."""
    nfe = dataset.record(invoice_id).nfe
    issued = nfe.issued_at.astimezone(BRAZIL_TZ)
    return f"{issued:%Y}/{issued:%m}/{nfe.access_key}-procNFe.xml"


def environment(staging: Path, **extra: str) -> dict[str, str]:
    """The job's environment: the staging folder, and no USE_FILE_TRANSFER unless given."""
    env = {k: v for k, v in os.environ.items() if k != "USE_FILE_TRANSFER"}
    return {**env, "AIRBYTE_STAGING_DIRECTORY": str(staging), **extra}


def records_with_files(run: CliRun, stream: str) -> list[dict[str, Any]]:
    """A stream's RECORD messages as dicts, their file_reference included (checked against
    the stream's schema as `CliRun.records` checks them)."""
    run.records(stream)
    return [m["record"] for m in run.of_type("RECORD") if m["record"]["stream"] == stream]


def staged_files(staging: Path) -> list[Path]:
    return sorted(p for p in staging.rglob("*") if p.is_file() and not p.name.startswith("."))


@dataclass
class Reads:
    """The same days read three times from one emulator: records only, then files asked for by
    include_files, then by delivery_method with USE_FILE_TRANSFER=true."""

    emulator: EmulatorServer
    staging: dict[str, Path]
    runs: dict[str, CliRun]


HOW = ("records", "include_files", "delivery_method")


@pytest.fixture(scope="module")
def reads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reads]:
    dataset = make_dataset()
    with quick_server(dataset, encoding_mix=True) as emulator:
        first = [invoice.id for invoice in dataset.records()[:PREFIXED]]
        emulator.serve_xml(prefixed(dataset.nfe_xml(i)) for i in first)
        staging, runs = {}, {}
        for how in HOW:
            work = tmp_path_factory.mktemp(how)
            staging[how] = work / "staging"
            staging[how].mkdir()
            config = emulator.connector_config(
                START, replication_end_date=END, documents_window_days=1
            )
            env = environment(staging[how])
            if how == "delivery_method":
                config["delivery_method"] = {"delivery_type": "use_file_transfer"}
                env["USE_FILE_TRANSFER"] = "true"  # as the platform sets it for this choice
            runs[how] = Cli(work).run(
                "read", config, env=env, catalog=files_catalog(how == "include_files")
            )
        yield Reads(emulator, staging, runs)


def expected_ids(dataset: Dataset) -> set[str]:
    return {i["id"] for i in dataset.invoices(f"{FIRST_DAYS[0]}T00:00:00", f"{END[:10]}T00:00:00")}


@pytest.mark.parametrize("how", HOW[1:])
def test_every_invoices_file_is_staged_byte_for_byte_under_its_documented_name(
    reads, how, capsys: pytest.CaptureFixture[str]
):
    run, staging, emulator = reads.runs[how], reads.staging[how], reads.emulator
    assert run.returncode == 0, run.errors()
    documents = records_with_files(run, "invoice_documents")
    assert {r["data"]["invoiceId"] for r in documents} == expected_ids(emulator.dataset)
    kinds: Counter[str] = Counter()
    compared = 0
    for record in documents:
        invoice_id = record["data"]["invoiceId"]
        reference = record["file_reference"]
        data = served(emulator, invoice_id)
        path = Path(reference["staging_file_url"])
        assert path.read_bytes() == data, invoice_id
        assert reference["file_size_bytes"] == len(data) == path.stat().st_size
        assert reference["source_file_relative_path"] == expected_name(emulator.dataset, invoice_id)
        assert path.parent.parent.parent.parent == staging  # <sync folder>/<year>/<month>/<file>
        assert path.relative_to(staging).parts[0].startswith("sp-invoices-")
        assert path.as_posix().endswith("/" + reference["source_file_relative_path"])
        assert "xml" not in record["data"]  # the file is the XML
        kinds[file_kind(data)] += 1
        compared += len(data)
    # Every generated variant was compared, each at least once.
    assert set(kinds) == {"utf-8", "bom", "iso-8859-1", "nfe:"} and kinds["nfe:"] == PREFIXED
    with capsys.disabled():  # how much was compared (not shown under pytest-xdist)
        print(f"\nFiles staged ({how}): {dict(kinds)}, {compared} bytes compared")
    names = [r["file_reference"]["source_file_relative_path"] for r in documents]
    assert len(set(names)) == len(names)
    assert staged_files(staging) == sorted(
        Path(r["file_reference"]["staging_file_url"]) for r in documents
    )
    log = run.logs()
    why = (
        "the catalog's include_files"
        if how == "include_files"
        else "delivery_method Copy Raw Files"
    )
    assert f"invoice files asked for ({why})" in log


def file_kind(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        return "bom"
    if b'encoding="ISO-8859-1"' in data[:60]:
        return "iso-8859-1"
    return "nfe:" if b"<nfe:nfeProc" in data[:200] else "utf-8"


@pytest.mark.parametrize("how", HOW[1:])
def test_no_other_stream_carries_a_file(reads, how):
    run = reads.runs[how]
    others = [
        m["record"] for m in run.of_type("RECORD") if m["record"]["stream"] != "invoice_documents"
    ]
    assert {r["stream"] for r in others} == set(ALL_STREAMS) - {"invoice_documents"}
    assert all("file_reference" not in r for r in others)


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A record without what differs between two reads of the same days: their exports."""
    return {k: v for k, v in record.items() if k not in ("exportId", "invoicesDocumentId")}


def test_without_file_transfer_nothing_is_staged_and_the_records_are_as_before(reads):
    plain = reads.runs["records"]
    assert plain.returncode == 0, plain.errors()
    documents = records_with_files(plain, "invoice_documents")
    assert documents and all("file_reference" not in r for r in documents)
    assert list(reads.staging["records"].iterdir()) == []
    for record in documents:  # the decoded text, as before file transfer existed
        data = served(reads.emulator, record["data"]["invoiceId"])
        encoding = {"bom": "utf-8-sig", "iso-8859-1": "iso-8859-1"}.get(file_kind(data), "utf-8")
        assert record["data"]["xml"] == data.decode(encoding)
    # With the files, every column stays but `xml`.
    by_id = {r["data"]["invoiceId"]: comparable(r["data"]) for r in documents}
    for how in HOW[1:]:
        with_files = {
            r["data"]["invoiceId"]: comparable(r["data"])
            for r in records_with_files(reads.runs[how], "invoice_documents")
        }
        assert with_files == {
            i: {k: v for k, v in r.items() if k != "xml"} for i, r in by_id.items()
        }
        items = [comparable(r) for r in reads.runs[how].records("invoice_items")]
        assert sorted(items, key=str) == sorted(
            (comparable(r) for r in plain.records("invoice_items")), key=str
        )


def test_discover_announces_invoice_documents_as_a_stream_of_files(cli, config):
    run = cli.run("discover", config)
    assert run.returncode == 0, run.errors()
    (message,) = run.of_type("CATALOG")
    based = {s["name"]: s.get("is_file_based") for s in message["catalog"]["streams"]}
    assert based == {name: True if name == "invoice_documents" else None for name in ALL_STREAMS}


# --- the real NF-e and events of ../shared/nfe-samples --------------------------------------------


def corpus_name(path: Path) -> str | None:
    """Where the docs say a corpus file lands, read from the file with lxml; None for a file
    that is no readable NF-e (it lands under its invoice ID)."""
    root = root_of(path)
    local = etree.QName(root).localname
    if lacks_item_numbers(root):
        return None
    n = {"n": NS}
    if local in ("nfeProc", "NFe"):
        nfe = root if local == "NFe" else root.find("n:NFe", n)
        info = nfe.find("n:infNFe", n)
        key = info.get("Id", "").removeprefix("NFe")
        if len(key) != 44:
            key = root.findtext("n:protNFe/n:infProt/n:chNFe", namespaces=n) or ""
        at = info.findtext("n:ide/n:dhEmi", namespaces=n) or ""
        authorized = root.find("n:protNFe/n:infProt/n:cStat", n) is not None
        name = f"{key}-{'procNFe' if authorized else 'NFe'}.xml"
    else:
        event = root if local == "evento" else root.find("n:evento", n)
        info = event.find("n:infEvento", n)
        key = info.findtext("n:chNFe", namespaces=n) or ""
        at = info.findtext("n:dhEvento", namespaces=n) or ""
        kind, sequence = (
            info.findtext("n:tpEvento", namespaces=n),
            info.findtext("n:nSeqEvento", namespaces=n),
        )
        registered = root.find("n:retEvento/n:infEvento/n:cStat", n) is not None
        name = f"{key}-{kind}-{int(sequence):02d}-{'procEventoNFe' if registered else 'evento'}.xml"
    if not (re.fullmatch(r"[0-9]{44}", key) and re.match(r"[0-9]{4}-[0-9]{2}-", at)):
        return None
    return f"{at[:4]}/{at[5:7]}/{name}"


@pytest.fixture(scope="module", params=HOW[1:])
def corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Path], CliRun, Path]:
    """The corpus read with its files asked for each of the two ways."""
    if not FILES:
        pytest.skip(ABSENT)
    work = tmp_path_factory.mktemp("corpus")
    staging = work / "staging"
    staging.mkdir()
    with serving_corpus() as (ids, config):
        env = environment(staging)
        if request.param == "delivery_method":
            config["delivery_method"] = {"delivery_type": "use_file_transfer"}
            env["USE_FILE_TRANSFER"] = "true"
        catalog = files_catalog(request.param == "include_files")
        run = Cli(work).run("read", config, env=env, catalog=catalog)
    return dict(zip(ids, FILES, strict=True)), run, staging


def test_every_corpus_file_is_staged_byte_for_byte_nfe_and_events(
    corpus, capsys: pytest.CaptureFixture[str]
):
    files, run, staging = corpus
    assert run.returncode == 0, run.errors()
    documents = records_with_files(run, "invoice_documents")
    assert sorted(r["data"]["invoiceId"] for r in documents) == sorted(files)
    names: dict[str, list[str]] = {}
    compared = 0
    for record in documents:
        invoice_id = record["data"]["invoiceId"]
        path, reference = files[invoice_id], record["file_reference"]
        data = path.read_bytes()
        assert Path(reference["staging_file_url"]).read_bytes() == data, path.name
        assert reference["file_size_bytes"] == len(data), path.name
        compared += len(data)
        expected = corpus_name(path) or f"by-invoice-id/{invoice_id}.xml"
        names.setdefault(expected, []).append(reference["source_file_relative_path"])
        assert "xml" not in record["data"]
    for expected, given in names.items():  # a name twice: the later ones carry their ID
        assert given[0] == expected
        assert all(g.startswith(expected.removesuffix(".xml") + "-") for g in given[1:])
    all_names = [n for given in names.values() for n in given]
    assert len(set(all_names)) == len(all_names) == len(FILES)
    events = [n for n in all_names if n.endswith(("-procEventoNFe.xml", "-evento.xml"))]
    unnamed = [n for n in all_names if n.startswith("by-invoice-id/")]
    assert len(events) >= 5 and len(unnamed) == 2  # SOURCES.md: two files break the layout
    assert len(staged_files(staging)) == len(FILES)
    with capsys.disabled():  # how much was compared (not shown under pytest-xdist)
        print(f"\nNF-e corpus staged: {len(FILES)} files, {compared} bytes compared")


# --- entry names and keys no name may be taken from -----------------------------------------------


def test_hostile_entry_names_and_keys_never_lead_outside_the_staging_folder(tmp_path):
    dataset = Dataset.generate(seed=27, start=date(2024, 1, 1), days=1, invoices_per_day=12)
    ids = [invoice.id for invoice in dataset.records()]
    # Hostile names on valid NF-e (named by their key, whatever the entry says), on files that
    # are no NF-e (named by the ID the entry's name gives), and a valid NF-e whose access key
    # tries to climb out (named by its invoice ID).
    valid = dict(zip(ids[:5], HOSTILE_NAMES, strict=True))
    unreadable = dict(zip(ids[5:10], UNREADABLE_NAMES, strict=True))
    climbing = ids[10]
    key = dataset.record(climbing).nfe.access_key
    xml_files = {i: b"<not-an-nfe/>" for i in unreadable}
    xml_files[climbing] = dataset.nfe_xml(climbing).replace(key.encode(), CLIMBING_KEY)
    jail = tmp_path / "jail"
    staging = jail / "staging"
    staging.mkdir(parents=True)
    with EmulatorServer(
        dataset,
        time_scale=TIME_SCALE,
        export_queue_seconds=1,
        export_processing_seconds=(5, 10),
        xml_files=xml_files,
        entry_names={**valid, **unreadable},
    ) as emulator:
        config = emulator.connector_config(START, replication_end_date="2024-01-02T00:00:00Z")
        env = environment(staging)
        run = Cli(tmp_path).run("read", config, env=env, catalog=files_catalog(True))
        by_entry = {{**valid, **unreadable}.get(i, f"{i}.xml"): served(emulator, i) for i in ids}
    assert run.returncode == 0, run.errors()
    documents = records_with_files(run, "invoice_documents")
    assert sorted(r["data"]["fileName"] for r in documents) == sorted(by_entry)
    given = {}
    for record in documents:
        reference = record["file_reference"]
        path = Path(reference["staging_file_url"])
        assert path.resolve().is_relative_to(staging.resolve())
        assert path.read_bytes() == by_entry[record["data"]["fileName"]]
        given[record["data"]["fileName"]] = reference["source_file_relative_path"]
    for invoice_id, entry in valid.items():
        assert given[entry] == expected_name(dataset, invoice_id)
    for entry, name in UNREADABLE_NAMES.items():
        assert given[entry] == name
    assert given[f"{climbing}.xml"] == f"by-invoice-id/{climbing}.xml"
    assert len(set(given.values())) == len(ids)
    assert sorted(p.name for p in jail.iterdir()) == ["staging"]  # nothing beside it
    assert [p for p in staging.rglob("*") if p.is_symlink()] == []


# --- a sync killed and resumed; a state 0.5.0 wrote; the XML-body reading -------------------------


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    with quick_server(make_dataset(), encoding_mix=True) as server:
        yield server


def killed_at(cli: Cli, config: dict[str, Any], env: dict[str, str], records: int) -> list[dict]:
    """Read every stream with the files and SIGKILL the process at its n-th invoice_documents
    record: within the first document (a day holds 8 to 14 invoices)."""
    process = subprocess.Popen(
        cli.command("read", config, files_catalog(True)), stdout=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    lines, seen = [], 0
    for line in process.stdout:
        lines.append(line)
        for message in parse_messages(line):
            seen += (
                message["type"] == "RECORD" and message["record"]["stream"] == "invoice_documents"
            )
        if seen >= records:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the sync ended before it could be killed"
    return parse_messages("".join(lines))


def test_a_killed_and_resumed_sync_references_only_whole_files(tmp_path, emulator):
    staging = tmp_path / "staging"
    staging.mkdir()
    env = environment(staging)
    config = emulator.connector_config(START, replication_end_date=END, documents_window_days=1)
    cli = Cli(tmp_path)
    first = killed_at(cli, config, env, records=4)
    killed = [
        m["record"]
        for m in first
        if m["type"] == "RECORD" and m["record"]["stream"] == "invoice_documents"
    ]
    assert len(killed) >= 4
    for record in killed:  # each was written whole before its record went out
        data = served(emulator, record["data"]["invoiceId"])
        assert Path(record["file_reference"]["staging_file_url"]).read_bytes() == data
    (killed_folder,) = [p for p in staging.iterdir()]
    # What a kill in the middle of a write leaves: a partial file no record points at.
    partial = killed_folder / "2024" / "01" / "half-written.xml.partial"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"<nfeProc")
    states = {}
    for message in first:
        if message["type"] == "STATE":
            states[message["state"]["stream"]["stream_descriptor"]["name"]] = message["state"]
    second = cli.run(
        "read", config, env=env, catalog=files_catalog(True), state=list(states.values())
    )
    assert second.returncode == 0, second.errors()
    resumed = records_with_files(second, "invoice_documents")
    resumed_folder = next(p for p in staging.iterdir() if p != killed_folder)
    for record in resumed:
        path = Path(record["file_reference"]["staging_file_url"])
        assert path.is_relative_to(resumed_folder)
        assert path.read_bytes() == served(emulator, record["data"]["invoiceId"])
    # The document in flight was read again, and its files staged again by the resumed sync.
    assert {r["data"]["invoiceId"] for r in killed} <= {r["data"]["invoiceId"] for r in resumed}
    assert {r["data"]["invoiceId"] for r in killed + resumed} == expected_ids(emulator.dataset)
    assert not partial.exists() and not list(staging.rglob("*.partial"))
    assert "Removed 1 partial file(s) that a killed sync left in" in second.logs()


def test_a_state_0_5_0_wrote_mid_backfill_is_read_on_with_the_files(tmp_path, emulator):
    """0.5.0 had no file transfer: its state (a window in flight whose export Amazon no longer
    knows, what a document holds) resumes as it is, and every invoice read comes with its file."""
    saved = {
        "dateEnd": "2024-01-01",
        "resume_from": "2024-01-02",
        "exports": {"2024-01-02/2024-01-02": {"exportId": "export-of-0.5.0", "documentsDone": []}},
        "invoicesPerDocument": 1000,
        "longestRangeDays": 30,
    }
    state = [
        *state_of("invoice_documents", saved),
        *state_of("invoice_items", saved),
        *state_of("invoices", {"date": "2024-01-02T00:00:00Z"}),
    ]
    staging = tmp_path / "staging"
    staging.mkdir()
    config = emulator.connector_config(START, replication_end_date=END)
    config["delivery_method"] = {"delivery_type": "use_file_transfer"}
    run = Cli(tmp_path).run(
        "read", config, env=environment(staging), catalog=files_catalog(False), state=state
    )
    assert run.returncode == 0, run.errors()
    documents = records_with_files(run, "invoice_documents")
    days = {
        i["id"] for i in emulator.dataset.invoices("2024-01-02T00:00:00", "2024-01-04T00:00:00")
    }
    assert {r["data"]["invoiceId"] for r in documents} == days
    for record in documents:
        path = Path(record["file_reference"]["staging_file_url"])
        assert path.read_bytes() == served(emulator, record["data"]["invoiceId"])
    assert run.states("invoice_documents")[-1]["dateEnd"] == "2024-01-03"


def test_under_the_xml_body_reading_the_file_is_the_body(tmp_path):
    """One invoice a document, its body the XML: 12 documents at Amazon's one a minute, on a
    clock five times as fast as the other tests'."""
    dataset = Dataset.generate(seed=29, start=date(2024, 1, 1), days=1, invoices_per_day=12)
    staging = tmp_path / "staging"
    staging.mkdir()
    with EmulatorServer(
        dataset,
        time_scale=TIME_SCALE * 5,
        encoding_mix=True,
        export_queue_seconds=1,
        export_processing_seconds=(5, 10),
        readings=Readings(document_body="xml"),
    ) as emulator:
        emulator.signer.ttl = 600
        config = emulator.connector_config(START, replication_end_date="2024-01-02T00:00:00Z")
        run = Cli(tmp_path).run(
            "read", config, env=environment(staging), catalog=files_catalog(True)
        )
        bodies = {i.id: served(emulator, i.id) for i in dataset.records()}
    assert run.returncode == 0, run.errors()
    documents = records_with_files(run, "invoice_documents")
    assert sorted(r["data"]["invoiceId"] for r in documents) == sorted(bodies)
    for record in documents:
        invoice_id, reference = record["data"]["invoiceId"], record["file_reference"]
        assert Path(reference["staging_file_url"]).read_bytes() == bodies[invoice_id]
        assert reference["source_file_relative_path"] == expected_name(dataset, invoice_id)
    assert {file_kind(b) for b in bodies.values()} == {"utf-8", "bom", "iso-8859-1"}


@pytest.mark.parametrize("how", HOW[1:])
def test_a_missing_staging_folder_fails_the_sync_naming_it_before_any_stream_starts(
    cli, config, emulator, how, tmp_path
):
    missing = tmp_path / "not-mounted"
    env = environment(missing)
    if how == "delivery_method":
        config["delivery_method"] = {"delivery_type": "use_file_transfer"}
    run = cli.run("read", config, env=env, catalog=files_catalog(how == "include_files"))
    assert run.returncode == 1
    (error,) = run.errors()
    assert error["failure_type"] == "config_error"
    why = (
        "the catalog's include_files"
        if how == "include_files"
        else "delivery_method Copy Raw Files"
    )
    assert error["message"].startswith(
        f"Invoice files were asked for ({why}), but the staging folder {missing} "
        "(AIRBYTE_STAGING_DIRECTORY) does not exist: "
    )
    assert run.of_type("RECORD") == [] and run.of_type("STATE") == []
    assert emulator.stats.requests() == [] and not missing.exists()  # not even a token
