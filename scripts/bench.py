"""`make bench`: how close a sync runs to the rate-limit bound, how fast records flow, how much
memory a read takes. Prints medians of several runs; asserts nothing (timings flake in tests).

(a) bound   A full read of every stream of a data set of quiet and busy days, at a time scale
            where the bound is about a minute, against the lower bound the scaled usage plans
            imply for the documents the sync needed:

                bound = first_export + (D - 1) / r

            D the number of export documents the sync downloaded, r the applied rate of
            getInvoicesDocument (0.0167/s x time scale: one call per scaled minute, burst 1),
            first_export the time the emulator takes to finish the first export (queue +
            processing, scaled): no document exists before its export is DONE. The same
            data set read by a plain sequential loop (one-day windows: create, poll, fetch
            the document, download, next day) gives the speed-up.
(b) speed   invoice_documents records per second with the emulator's limits lifted: a single
            export of many realistic NF-e files, `source-sp-invoices read` writing to /dev/null.
(c) memory  Peak RSS of that read on a ZIP of at least 50,000 invoices.
(d) parse   NF-e files parsed into header and item records per second (in-process).
(e) throttle  429 answers / all SP-API requests of a full read of every stream with Amazon's
            default usage plans: a healthy one, and one under a 429 storm (the first
            STORM calls of every operation, and as many again in the middle of the documents,
            answer 429 whatever the connector's pacing).
(f) disk    Peak bytes on the temporary disk during a read of all five streams in one-day
            windows (30 quiet and busy days, scale 60): the read's TMPDIR is a fresh directory,
            sampled every 10 ms (the files the read holds open there, unlinked ones included,
            and any named file), against the largest document ZIP and all of them; and how
            many files the read leaves there.
(g) documents  Documents fetched (getInvoicesDocument 200, distinct ids) and exports created
            per stream selection (invoice_documents, invoice_items, both, all five), default
            config, 14 quiet and busy days, scale 60; then a sync of all five streams SIGKILLed
            in the middle of a document once one was read, resumed from the last state of each
            stream: documents fetched and exports created against the uninterrupted sync.
(h) quiet   A quiet seller (60 days of 2 invoices), both document streams, default config,
            scale 60: wall time, documents and export window sizes, and the ratio of the wall
            time to what one-day windows need at the document rate:

                one_day_bound = first_export + (60 - 1) / r     (target ratio <= 0.25)
(i) resources  Peak RSS and peak temporary disk of `check`, `discover` and a `read` of all five
            streams (NF-e columns on) against the largest document of bench, the single export
            of 50,000 invoices of (b) and (c): each command's own process, its VmHWM and its
            fresh TMPDIR (open files, unlinked ones included, and named files) sampled every
            10 ms. Medians are written to scripts/resources.json, which
            integration_tests/test_metadata.py holds the resourceRequirements of metadata.yaml
            to.

(j) floor   Documents fetched against the floor ceil(N / M), the fewest documents Amazon can give
            N invoices in documents of at most M, on a dense set (500 invoices in 10 days, M 40:
            every day over M), a year-like set (20,000 in 365 days, M 500: about 10 % of M a
            day) and a busy one (100,000 in 365 days, M 500: about half of M a day; one run by
            default, --busy-runs), every stream selected, default config, scale 240: this
            version's planned windows next to one-day windows (documents_window_days=1) and to
            0.4.0's rule (windows doubling until a split, run from git at BASELINE_COMMIT). Also
            the first invoice_documents record's wait (the first document), in Amazon's seconds
            and beyond the first export's processing, and the
            documents of the incremental sync that follows (the lookback days again).

(k) day     "A seller's day": after a backfill (14 days, every stream selected, default config,
            scale 240), 24 hourly syncs from the state each one leaves, while the day's invoices
            arrive hour by hour and three invoices of the days looked back at are canceled (at
            6, 12 and 18 h), for a year-like seller (55 invoices a day, M 500) and a busy one
            (274 a day, M 500): documents fetched, exports created, records of `invoices`,
            `invoice_documents` and `invoice_items` emitted over the day against the invoices new
            or changed, the median sync's wall time (at scale 240, mostly the process's start)
            and its least time at Amazon's rates (the first export's processing, then a
            document a minute), and the state's size; this version next to 0.5.0 (run from git at
            BASELINE_0_5_0, which exports and emits every day looked back at again).

`--only` takes a part's name or letter (`--only memory`, `--only c`), and may be repeated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sp_api_emulator import Dataset, EmulatorServer, day_counts, day_profile, spread  # noqa: E402

CLI = Path(sys.executable).parent / "source-sp-invoices"
DOCUMENT_RATE = 0.0167  # getInvoicesDocument's usage plan, requests per second
LIFTED = {
    op: 1000.0
    for op in (
        "getInvoicesAttributes",
        "getInvoices",
        "createInvoicesExport",
        "getInvoicesExports",
        "getInvoicesExport",
        "getInvoicesDocument",
    )
}


def catalog(*streams: str) -> dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "full_refresh" if name == "invoice_attributes" else "incremental",
                "destination_sync_mode": "append",
            }
            for name in streams
        ]
    }


def read(
    server: EmulatorServer, config: dict[str, Any], streams: tuple[str, ...], sink: Any
) -> float:
    """Run `source-sp-invoices read`; return its wall time in seconds."""
    with tempfile.TemporaryDirectory() as directory:
        config_path = Path(directory, "config.json")
        catalog_path = Path(directory, "catalog.json")
        config_path.write_text(json.dumps(config))
        catalog_path.write_text(json.dumps(catalog(*streams)))
        started = time.monotonic()
        subprocess.run(
            [str(CLI), "read", "--config", str(config_path), "--catalog", str(catalog_path)],
            stdout=sink,
            check=True,
        )
        return time.monotonic() - started


def bound_run(days: int, scale: float, seed: int) -> dict[str, float]:
    dataset = Dataset.generate(
        seed=seed, start=date(2024, 1, 1), days=days, invoices_per_day=day_profile()
    )
    end = f"2024-01-{days + 1:02d}T00:00:00Z" if days < 31 else None
    with EmulatorServer(dataset, time_scale=scale) as server:
        config = server.connector_config("2024-01-01T00:00:00Z", replication_end_date=end)
        with open(os.devnull, "wb") as sink:
            wall = read(
                server,
                config,
                ("invoice_attributes", "invoices", "invoice_exports", "invoice_documents"),
                sink,
            )
        documents = server.stats.count("getInvoicesDocument", 200)
        first = min(server.exports.all(), key=lambda export: export.created_at)
        first_export = (first.finished_at - first.created_at) / scale  # queue + processing
    rate = DOCUMENT_RATE * scale
    bound = first_export + (documents - 1) / rate
    return {
        "wall": wall,
        "bound": bound,
        "ratio": wall / bound,
        "documents": documents,
        "days": days,
    }


def sequential_run(days: int, scale: float, seed: int) -> float:
    """The plain loop a first connector would write: one day at a time, nothing overlapped."""
    dataset = Dataset.generate(
        seed=seed, start=date(2024, 1, 1), days=days, invoices_per_day=day_profile()
    )
    with EmulatorServer(dataset, time_scale=scale) as server:
        session = requests.Session()
        token = session.post(
            server.lwa_url,
            data={
                "grant_type": "refresh_token",
                **{
                    k: v
                    for k, v in {
                        "refresh_token": server.credentials.refresh_token,
                        "client_id": server.credentials.client_id,
                        "client_secret": server.credentials.client_secret,
                    }.items()
                },
            },
        ).json()["access_token"]
        api = f"{server.url}/tax/invoices/2024-06-19"
        headers = {"x-amz-access-token": token}
        interval = 1 / (DOCUMENT_RATE * scale)
        last_document_call = -interval
        started = time.monotonic()

        def call(method: str, url: str, **kwargs: Any) -> requests.Response:
            while True:
                response = session.request(method, url, headers=headers, **kwargs)
                if response.status_code != 429:
                    response.raise_for_status()
                    return response
                time.sleep(1 / float(response.headers["x-amzn-RateLimit-Limit"]))

        for day in range(1, days + 1):
            stamp = f"2024-01-{day:02d}"
            export_id = call(
                "POST",
                f"{api}/exports",
                json={
                    "marketplaceId": "A2Q3Y263D00KWC",
                    "dateStart": stamp,
                    "dateEnd": stamp,
                    "fileFormat": "XML",
                },
            ).json()["exportId"]
            while (export := call("GET", f"{api}/exports/{export_id}").json()["export"])[
                "status"
            ] != "DONE":
                time.sleep(30 / scale)  # poll every 30 (scaled) seconds
            for document_id in export["invoicesDocumentIds"]:
                time.sleep(max(0.0, last_document_call + interval - time.monotonic()))
                last_document_call = time.monotonic()
                url = call("GET", f"{api}/documents/{document_id}").json()["invoicesDocument"][
                    "invoicesDocumentUrl"
                ]
                session.get(url).raise_for_status()
        return time.monotonic() - started


def peak_rss_kb(config: dict[str, Any]) -> int:
    """Peak RSS of one read: the kernel's high-water mark (VmHWM) of the read's own process.

    getrusage(RUSAGE_CHILDREN) would also count the image of this benchmark process (data set
    and emulator) that a child carries until it execs: it reported ours, not the read's.
    """
    with tempfile.TemporaryDirectory() as directory:
        config_path, catalog_path = Path(directory, "c.json"), Path(directory, "k.json")
        config_path.write_text(json.dumps(config))
        catalog_path.write_text(json.dumps(catalog("invoice_documents")))
        command = [str(CLI), "read", "--config", str(config_path), "--catalog", str(catalog_path)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        status, peak = Path(f"/proc/{process.pid}/status"), 0
        while process.poll() is None:
            try:
                hwm = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM"))
            except (OSError, StopIteration):
                break
            peak = max(peak, int(hwm.split()[1]))
            time.sleep(0.02)
        if process.wait() != 0:
            raise RuntimeError("the read failed")
        return peak


def one_document_emulator(invoices: int, seed: int) -> EmulatorServer:
    """One day of `invoices` invoices exported as one document, limits lifted, the ZIP built
    once and reused: the emulator of (b), (c) and (i) (and of scripts/measure_readers.py)."""
    dataset = Dataset.generate(seed=seed, start=date(2024, 1, 1), days=1, invoices_per_day=invoices)
    return EmulatorServer(
        dataset,
        time_scale=1000,
        rate_overrides=LIFTED,
        max_invoices_per_document=invoices + 1,
        export_processing_seconds=(1, 1),
        export_queue_seconds=0,
        reuse_identical_documents=True,
    )


def one_document_config(server: EmulatorServer, parse_nfe: bool) -> dict[str, Any]:
    """The config that reads that one day in one window."""
    return server.connector_config(
        "2024-01-01T00:00:00Z",
        replication_end_date="2024-01-02T00:00:00Z",
        documents_window_days=1,
        parse_nfe=parse_nfe,
    )


def speed_run(
    invoices: int, seed: int, parse_nfe: bool = False, measure_memory: bool = False
) -> dict[str, float]:
    with one_document_emulator(invoices, seed) as server:
        config = one_document_config(server, parse_nfe)
        # Build the ZIP once first, so that the timed read measures the connector, not the emulator.
        with open(os.devnull, "wb") as sink:
            read(server, config, ("invoice_documents",), sink)
        with open(os.devnull, "wb") as sink:
            wall = read(server, config, ("invoice_documents",), sink)
        peak_kb = peak_rss_kb(config) if measure_memory else 0
        zips = [p for p in Path(server.zips.directory).glob("**/*.zip")]
        zip_mb = sum(p.stat().st_size for p in zips) / 2**20
        xml_mb = sum(i.file_size for p in zips for i in zipfile.ZipFile(p).infolist()) / 2**20
    return {
        "records_per_second": invoices / wall,
        "wall": wall,
        "peak_rss_mb": peak_kb / 1024,
        "zip_mb": zip_mb,
        "xml_mb": xml_mb,
    }


def parse_rate(invoices: int, seed: int) -> float:
    """NF-e files parsed into header and item records per second, the files already in memory
    as the ZIP reader hands them to the parser (the bytes of each entry)."""
    from source_sp_invoices.nfe import NfeParser

    dataset = Dataset.generate(seed=seed, start=date(2024, 1, 1), days=1, invoices_per_day=invoices)
    files = [dataset.nfe_xml(invoice["id"]) for invoice in dataset.invoices()]
    parser = NfeParser()
    started = time.perf_counter()
    for data in files:
        parsed = parser.parse(data)
        assert parsed.header["accessKey"] and parsed.items
    return len(files) / (time.perf_counter() - started)


DISK_DAYS = 30  # days of part (f)
DOCUMENTS_DAYS = 14  # days of part (g)
STORM = 6  # consecutive 429s per operation, twice; fewer than the 8 retries a request gets
ALL_STREAMS = (
    "invoice_attributes",
    "invoices",
    "invoice_exports",
    "invoice_documents",
    "invoice_items",
)


def throttle_run(days: int, scale: float, seed: int, storm: bool) -> dict[str, float]:
    """One full read with the default plans; 429s and requests counted by the emulator."""
    dataset = Dataset.generate(
        seed=seed, start=date(2024, 1, 1), days=days, invoices_per_day=day_profile()
    )
    end = f"2024-01-{days + 1:02d}T00:00:00Z"
    with EmulatorServer(dataset, time_scale=scale) as server:
        config = server.connector_config("2024-01-01T00:00:00Z", replication_end_date=end)
        operations = list(LIFTED)
        if storm:
            for operation in operations:
                server.faults.fail_next(operation, 429, count=STORM)

            def second_wave() -> None:  # once half of the documents are read
                while server.stats.count("getInvoicesDocument", 200) < days // 4:
                    time.sleep(0.05)
                for operation in operations:
                    server.faults.fail_next(operation, 429, count=STORM)

            threading.Thread(target=second_wave, daemon=True).start()
        with open(os.devnull, "wb") as sink:
            wall = read(server, config, ALL_STREAMS, sink)
        requests_made = sum(server.stats.count(operation) for operation in operations)
        throttled = sum(server.stats.count(operation, 429) for operation in operations)
    return {"wall": wall, "requests": requests_made, "throttled": throttled}


def cli_command(
    directory: str,
    config: dict[str, Any],
    streams: tuple[str, ...],
    state: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The `source-sp-invoices read` command line, its files written to `directory`."""
    config_path = Path(directory, "config.json")
    catalog_path = Path(directory, "catalog.json")
    config_path.write_text(json.dumps(config))
    catalog_path.write_text(json.dumps(catalog(*streams)))
    command = [str(CLI), "read", "--config", str(config_path), "--catalog", str(catalog_path)]
    if state is not None:
        state_path = Path(directory, "state.json")
        state_path.write_text(json.dumps(state))
        command += ["--state", str(state_path)]
    return command


def temporary_bytes(pid: int, directory: str) -> int:
    """Bytes on the temporary disk `directory` now: the files the process holds open there
    (unlinked ones too: stat on the /proc fd link reaches the open file), each file once,
    plus the named files in the directory and its folders (a folder's own size is not
    counted)."""
    prefix = directory.rstrip("/") + "/"
    seen: set[tuple[int, int]] = set()
    total = 0
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        fds = []
    for fd in fds:
        link = f"/proc/{pid}/fd/{fd}"
        try:
            if not os.readlink(link).startswith(prefix):
                continue
            stat = os.stat(link)
        except OSError:  # closed meanwhile
            continue
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    folders = [directory]  # the CDK's folder there holds the config it writes (config.json)
    while folders:
        try:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
                            continue
                        stat = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (stat.st_dev, stat.st_ino) not in seen:
                        seen.add((stat.st_dev, stat.st_ino))
                        total += stat.st_size
        except OSError:
            pass
    return total


def disk_run(days: int, scale: float, seed: int) -> dict[str, float]:
    """One read of all streams in one-day windows, the read's TMPDIR a fresh directory whose
    bytes (open unlinked files included) are sampled every 10 ms."""
    dataset = Dataset.generate(
        seed=seed, start=date(2024, 1, 1), days=days, invoices_per_day=day_profile()
    )
    end = f"2024-01-{days + 1:02d}T00:00:00Z" if days < 31 else None
    with (
        EmulatorServer(dataset, time_scale=scale) as server,
        tempfile.TemporaryDirectory() as inputs,
        tempfile.TemporaryDirectory(prefix="bench-tmpdir-") as scratch,
    ):
        scratch = os.path.realpath(scratch)
        config = server.connector_config(
            "2024-01-01T00:00:00Z", replication_end_date=end, documents_window_days=1
        )
        command = cli_command(inputs, config, ALL_STREAMS)
        started = time.monotonic()
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, env={**os.environ, "TMPDIR": scratch}
        )
        peak = samples = 0
        while process.poll() is None:
            peak = max(peak, temporary_bytes(process.pid, scratch))
            samples += 1
            time.sleep(0.01)
        wall = time.monotonic() - started
        if process.returncode != 0:
            raise RuntimeError(f"the read failed (exit status {process.returncode})")
        left = len(os.listdir(scratch))
        documents = server.stats.count("getInvoicesDocument", 200)
        sizes = [p.stat().st_size for p in Path(server.zips.directory or scratch).glob("**/*.zip")]
    return {
        "peak": peak,
        "samples": samples,
        "left": left,
        "largest_zip": max(sizes, default=0),
        "all_zips": sum(sizes),
        "zips": len(sizes),
        "documents": documents,
        "wall": wall,
    }


RESOURCES_INVOICES = 50_000  # part (i): the largest document of bench, as in (b) and (c)
RESOURCES_JSON = ROOT / "scripts" / "resources.json"  # part (i) writes it; test_metadata reads it


def watch(command: list[str], scratch: str) -> dict[str, float]:
    """Run one connector command, its TMPDIR the fresh directory `scratch`, sampling every 10 ms
    its peak RSS (the kernel's high-water mark VmHWM of its own process, as in (c)) and the bytes
    it has on the temporary disk (open files, unlinked ones too, and named files, as in (f))."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, env={**os.environ, "TMPDIR": scratch}
    )
    status = Path(f"/proc/{process.pid}/status")
    peak_kb = peak_tmp = samples = 0
    while process.poll() is None:
        try:
            hwm = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM"))
            peak_kb = max(peak_kb, int(hwm.split()[1]))
        except (OSError, StopIteration):  # exiting: its memory is gone, VmHWM with it
            pass
        peak_tmp = max(peak_tmp, temporary_bytes(process.pid, scratch))
        samples += 1
        time.sleep(0.01)
    if process.returncode != 0:
        raise RuntimeError(f"{command[1]} failed (exit status {process.returncode})")
    return {
        "peak_rss_mib": peak_kb / 1024,
        "peak_tmp_mib": peak_tmp / 2**20,
        "peak_tmp_bytes": peak_tmp,
        "files_left": len(os.listdir(scratch)),
        "samples": samples,
        "wall": time.monotonic() - started,
    }


def resources_run(invoices: int, seed: int) -> dict[str, Any]:
    """check, discover and a read of all five streams (NF-e columns on) against one export of
    `invoices` invoices in one document, each command with a fresh TMPDIR."""
    with (
        one_document_emulator(invoices, seed) as server,
        tempfile.TemporaryDirectory() as inputs,
    ):
        config = one_document_config(server, parse_nfe=True)
        read_command = cli_command(inputs, config, ALL_STREAMS)
        config_args = read_command[2:4]  # --config <path>
        commands = {
            "check": [str(CLI), "check", *config_args],
            "discover": [str(CLI), "discover", *config_args],
            "read": read_command,
        }
        run: dict[str, Any] = {}
        for name, command in commands.items():
            with tempfile.TemporaryDirectory(prefix="bench-tmpdir-") as scratch:
                run[name] = watch(command, os.path.realpath(scratch))
        run["documents"] = server.stats.count("getInvoicesDocument", 200)
        sizes = [p.stat().st_size for p in Path(server.zips.directory).glob("**/*.zip")]
        run["largest_document_mib"] = max(sizes, default=0) / 2**20
    return run


def fetched_documents(server: EmulatorServer) -> list[str]:
    """The document ids of every getInvoicesDocument call answered 200, in order."""
    return [
        record.path.rstrip("/").rsplit("/", 1)[-1]
        for record in server.stats.requests("getInvoicesDocument")
        if record.status == 200
    ]


def duplicate_starts(server: EmulatorServer) -> int:
    """Exports created for a window whose dateStart an earlier export already had."""
    starts = [export.query.get("dateStart") for export in server.export_requests()]
    return len(starts) - len(set(starts))


DOCUMENT_SELECTIONS = (
    ("invoice_documents",),
    ("invoice_items",),
    ("invoice_documents", "invoice_items"),
    ALL_STREAMS,
)


def selection_run(
    dataset: Dataset, days: int, scale: float, streams: tuple[str, ...]
) -> dict[str, float]:
    """One read of the selected streams on a fresh emulator: documents and exports."""
    with EmulatorServer(dataset, time_scale=scale) as server:
        config = server.connector_config(
            "2024-01-01T00:00:00Z", replication_end_date=f"2024-01-{days + 1:02d}T00:00:00Z"
        )
        with open(os.devnull, "wb") as sink:
            wall = read(server, config, streams, sink)
        ids = fetched_documents(server)
        return {
            "documents": len(ids),
            "distinct": len(set(ids)),
            "exports": len(server.export_requests()),
            "duplicate_starts": duplicate_starts(server),
            "wall": wall,
        }


def read_at_least_one_document(stream_state: dict[str, Any]) -> bool:
    """Whether a document stream's state says at least one document was read."""
    if stream_state.get("dateEnd"):
        return True
    exports = stream_state.get("exports") or {}
    entries = exports.values() if isinstance(exports, dict) else exports
    return any(isinstance(e, dict) and e.get("documentsDone") for e in entries)


def killed_run(dataset: Dataset, days: int, scale: float) -> dict[str, float]:
    """All five streams, SIGKILLed in the middle of a document once one was read, then resumed
    from the last state of each stream read from its output, on the same emulator."""
    with EmulatorServer(dataset, time_scale=scale) as server, tempfile.TemporaryDirectory() as d:
        config = server.connector_config(
            "2024-01-01T00:00:00Z", replication_end_date=f"2024-01-{days + 1:02d}T00:00:00Z"
        )
        command = cli_command(d, config, ALL_STREAMS)
        # A killed read leaves the CDK's temporary folder behind: in `d`, which goes anyway.
        scratch = {**os.environ, "TMPDIR": d}
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=scratch)
        assert process.stdout is not None
        states: dict[str, dict[str, Any]] = {}
        armed, killed = False, False
        for line in process.stdout:
            if not line.startswith("{"):
                continue
            message = json.loads(line)
            if message.get("type") == "STATE":
                stream = message["state"].get("stream") or {}
                name = (stream.get("stream_descriptor") or {}).get("name")
                if name is not None:
                    states[name] = message["state"]
                if name == "invoice_documents" and not armed:
                    armed = read_at_least_one_document(stream.get("stream_state") or {})
            elif (
                armed
                and message.get("type") == "RECORD"
                and message["record"]["stream"] == "invoice_items"
            ):
                process.send_signal(signal.SIGKILL)
                killed = True
                break
        process.stdout.close()
        status = process.wait()
        if not killed:
            raise RuntimeError(f"the read ended (status {status}) before it could be killed")
        first = fetched_documents(server)
        first_exports = len(server.export_requests())
        resumed = subprocess.run(
            cli_command(d, config, ALL_STREAMS, list(states.values())),
            stdout=subprocess.DEVNULL,
            env=scratch,
            timeout=1800,
        )
        if resumed.returncode != 0:
            raise RuntimeError(f"the resumed read failed (exit status {resumed.returncode})")
        ids = fetched_documents(server)
        counts = {i: ids.count(i) for i in set(ids)}
        return {
            "killed_documents": len(first),
            "resumed_documents": len(ids) - len(first),
            "documents": len(ids),
            "refetched": sum(1 for n in counts.values() if n > 1),
            "killed_exports": first_exports,
            "exports": len(server.export_requests()),
            "duplicate_starts": duplicate_starts(server),
        }


def quiet_run(days: int, per_day: int, scale: float, seed: int) -> dict[str, Any]:
    """Both document streams of a quiet seller, default config: wall time against the time
    one-day windows need at the document rate."""
    dataset = Dataset.generate(
        seed=seed, start=date(2024, 1, 1), days=days, invoices_per_day=per_day
    )
    end = (date(2024, 1, 1) + timedelta(days=days)).isoformat() + "T00:00:00Z"
    with EmulatorServer(dataset, time_scale=scale) as server:
        config = server.connector_config("2024-01-01T00:00:00Z", replication_end_date=end)
        with open(os.devnull, "wb") as sink:
            wall = read(server, config, ("invoice_documents", "invoice_items"), sink)
        documents = server.stats.count("getInvoicesDocument", 200)
        windows = [
            (
                date.fromisoformat(export.query["dateEnd"])
                - date.fromisoformat(export.query["dateStart"])
            ).days
            + 1
            for export in server.export_requests()
        ]
        first = min(server.exports.all(), key=lambda export: export.created_at)
        first_export = (first.finished_at - first.created_at) / scale  # queue + processing
    one_day_bound = first_export + (days - 1) / (DOCUMENT_RATE * scale)
    return {
        "wall": wall,
        "documents": documents,
        "windows": windows,
        "one_day_bound": one_day_bound,
        "ratio": wall / one_day_bound,
    }


BASELINE_COMMIT = "585d82a"  # 0.4.0 as it landed: the last commit before planned windows
FLOOR_SCALE = 240.0
FLOOR_SETS = {  # name: (invoices, days, invoices per document)
    "dense": (500, 10, 40),
    "year-like": (20_000, 365, 500),
    "busy": (100_000, 365, 500),
}
FLOOR_RULES = ("planned", "one-day", "0.4.0")


def baseline_tree(directory: str) -> Path | None:
    """0.4.0's package and main.py, from git, to run its rule against the same data sets."""
    return tree_at(BASELINE_COMMIT, directory)


def timed_read(
    command: list[str], cwd: str | None, clock: Callable[[], float]
) -> tuple[float, float | None, dict]:
    """Run a read; its wall time, the time (on `clock`) from its first message, once the
    process is up, to its first invoice_documents record, and the last state of each stream."""
    started = time.monotonic()
    up: float | None = None
    first: float | None = None
    states: dict[str, Any] = {}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd)
    assert process.stdout is not None
    for line in process.stdout:
        if not line.startswith("{"):
            continue
        up = clock() if up is None else up
        if first is None and '"stream":"invoice_documents"' in line and '"RECORD"' in line:
            first = clock() - up
        if '"STATE"' in line:
            message = json.loads(line)
            stream = message["state"].get("stream") or {}
            states[stream.get("stream_descriptor", {}).get("name")] = message["state"]
    if process.wait() != 0:
        raise RuntimeError(f"{command[:2]} read failed")
    return time.monotonic() - started, first, states


def floor_run(name: str, rule: str, seed: int, baseline: Path | None) -> dict[str, Any] | None:
    """One backfill of a data set under one rule, and the incremental sync after it."""
    total, days, per_document = FLOOR_SETS[name]
    counts = spread(total, days, seed)
    start = date(2024, 1, 1)
    dataset = Dataset.generate(
        seed=seed, start=start, days=days, invoices_per_day=day_counts(counts, start)
    )
    end = (start + timedelta(days=days)).isoformat() + "T00:00:00Z"
    extra = {"documents_window_days": 1} if rule == "one-day" else {}
    if rule == "0.4.0" and baseline is None:
        return None
    with (
        EmulatorServer(
            dataset, time_scale=FLOOR_SCALE, max_invoices_per_document=per_document
        ) as server,
        tempfile.TemporaryDirectory() as directory,
    ):
        server.signer.ttl = 600  # no URL expires on its own on a loaded machine
        config = server.connector_config("2024-01-01T00:00:00Z", replication_end_date=end, **extra)
        command = cli_command(directory, config, ALL_STREAMS)
        cwd = None
        if rule == "0.4.0":
            assert baseline is not None
            command = [sys.executable, str(baseline / "main.py"), *command[1:]]
            cwd = str(baseline)
        wall, first, states = timed_read(command, cwd, server.exports.now)
        # The first document's wait, in Amazon's (emulator) seconds: from the sync's start, and
        # beyond the time Amazon took to process the first export (the connector's own part).
        exports = sorted(server.exports.all(), key=lambda export: export.created_at)
        processing = exports[0].finished_at - exports[0].created_at
        first_wait = first
        documents = len(set(fetched_documents(server)))
        server.stats.reset()
        later = cli_command(directory, config, ALL_STREAMS, list(states.values()))
        if rule == "0.4.0":
            later = [sys.executable, str(baseline / "main.py"), *later[1:]]  # type: ignore[operator]
        timed_read(later, cwd, server.exports.now)
        incremental = len(set(fetched_documents(server)))
    floor = math.ceil(total / per_document)
    return {
        "documents": documents,
        "floor": floor,
        "ratio": documents / floor,
        "first_document": first_wait,
        "beyond_processing": None if first_wait is None else first_wait - processing,
        "wall": wall,
        "incremental": incremental,
    }


BASELINE_0_5_0 = "e77afb2"  # 0.5.0 as it landed: the last commit before change detection
DAY_SELLERS = {"year-like": (55, 500), "busy": (274, 500)}  # invoices a day, invoices per document
DAY_BACKFILL_DAYS = 14
DAY_CANCELED_AT = (6, 12, 18)  # hours at which an invoice of the days looked back at is canceled
DAY_STREAMS = ("invoices", "invoice_documents", "invoice_items")


def tree_at(commit: str, directory: str) -> Path | None:
    """The package and main.py of a commit, from git, to run against the same data."""
    target = Path(directory, commit)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "source_sp_invoices", "main.py"],
        capture_output=True,
    )
    if archive.returncode != 0:
        return None
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def counted_read(
    command: list[str], cwd: str | None, ids: dict[str, set[str]] | None = None
) -> tuple[float, Counter, dict[str, Any]]:
    """Run a read: its wall time, its records per stream, and the last state of each stream;
    the invoice ids of the `invoices` and `invoice_documents` records go into `ids`."""
    started = time.monotonic()
    records: Counter = Counter()
    states: dict[str, Any] = {}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=cwd)
    assert process.stdout is not None
    for line in process.stdout:
        if '"RECORD"' in line:
            record = json.loads(line)["record"]
            records[record["stream"]] += 1
            if ids is not None and record["stream"] in ids:
                data = record["data"]
                ids[record["stream"]].add(data.get("invoiceId") or data.get("id"))
        elif '"STATE"' in line:
            message = json.loads(line)
            stream = message["state"].get("stream") or {}
            states[stream.get("stream_descriptor", {}).get("name")] = message["state"]
    if process.wait() != 0:
        raise RuntimeError(f"{command[:2]} read failed")
    return time.monotonic() - started, records, states


def amazon_bound(created: list[Any], documents: int) -> float:
    """The least time a sync that created these exports and fetched these documents takes at
    Amazon's rates, in Amazon's seconds: its first export's processing, then a document a
    minute (0 for a sync that created and fetched nothing)."""
    processing = created[0].finished_at - created[0].created_at if created else 0.0
    return processing + max(0, documents - 1) / DOCUMENT_RATE


def day_run(name: str, version: str, seed: int, tree: Path | None) -> dict[str, Any] | None:
    """A backfill, then 24 hourly syncs while the day's invoices arrive and three invoices of
    the days looked back at are canceled; what the hourly syncs cost."""
    per_day, per_document = DAY_SELLERS[name]
    if version == "0.5.0" and tree is None:
        return None
    start = date(2024, 1, 1)
    dataset = Dataset.generate(
        seed=seed, start=start, days=DAY_BACKFILL_DAYS, invoices_per_day=per_day
    )
    day = start + timedelta(days=DAY_BACKFILL_DAYS)
    rng = random.Random(seed)
    hourly = [per_day // 24 + (1 if h < per_day % 24 else 0) for h in range(24)]
    with (
        EmulatorServer(
            dataset, time_scale=FLOOR_SCALE, max_invoices_per_document=per_document
        ) as server,
        tempfile.TemporaryDirectory() as directory,
    ):
        server.signer.ttl = 600

        emitted_ids: dict[str, set[str]] = {"invoices": set(), "invoice_documents": set()}

        def sync(end: str, state: list[dict[str, Any]] | None):
            config = server.connector_config("2024-01-01T00:00:00Z", replication_end_date=end)
            command = cli_command(directory, config, ALL_STREAMS, state)
            cwd = None
            if version == "0.5.0":
                assert tree is not None
                command, cwd = [sys.executable, str(tree / "main.py"), *command[1:]], str(tree)
            return counted_read(command, cwd, emitted_ids)

        _, _, states = sync(f"{day.isoformat()}T00:00:00Z", None)
        for ids in emitted_ids.values():
            ids.clear()  # the backfill's
        state = list(states.values())
        server.stats.reset()
        exports_before = len(server.exports.all())
        walls, amazon, records, changed = [], [], Counter(), 0
        changed_ids: set[str] = set()
        for hour in range(1, 25):
            for _ in range(hourly[hour - 1]):
                moment = datetime.combine(day, datetime.min.time(), UTC) + timedelta(
                    hours=hour - 1, seconds=rng.randrange(3600)
                )
                changed_ids.add(dataset.add_invoice(moment)["id"])
                changed += 1
            if hour in DAY_CANCELED_AT:
                # Of the days both `invoices` (3 days before its cursor, the last sync's end)
                # and the document streams (the 3 whole days before the last) look back at.
                midnight = datetime.combine(day, datetime.min.time(), UTC)
                looked_back = dataset.invoices(
                    midnight - timedelta(days=3) + timedelta(hours=hour + 3),
                    midnight,
                    statuses=["AUTHORIZED"],
                )
                canceled = rng.choice(looked_back)["id"]
                dataset.set_status(canceled, "CANCELED")
                changed_ids.add(canceled)
                changed += 1
            end = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=hour)
            exports, documents = len(server.exports.all()), len(fetched_documents(server))
            wall, emitted, states = sync(end.strftime("%Y-%m-%dT%H:%M:%SZ"), state)
            created = sorted(server.exports.all(), key=lambda e: e.created_at)[exports:]
            fetched = len(fetched_documents(server)) - documents
            amazon.append(amazon_bound(created, fetched))
            walls.append(wall)
            records += emitted
            state = [states.get(s["stream"]["stream_descriptor"]["name"], s) for s in state]
        size = max(len(json.dumps(s["stream"]["stream_state"])) for s in state)
        return {
            "documents": len(fetched_documents(server)),
            "exports": len(server.exports.all()) - exports_before,
            "changed": changed,
            **{stream: records[stream] for stream in DAY_STREAMS},
            "wall": statistics.median(walls),
            "amazon": statistics.median(amazon),
            "amazon_day": sum(amazon),
            "state_bytes": size,
            # New or changed invoices that a stream did not emit during the day: none, ever.
            "missing": sum(len(changed_ids - ids) for ids in emitted_ids.values()),
        }


def mb(size: float) -> str:
    return f"{size / 2**20:.2f} MB"


def machine() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((ln.split(":")[1].strip() for ln in cpuinfo if "model name" in ln), "?")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {os.cpu_count()} cores ({cpu})"


PARTS = {  # name: letter, in the order they run
    "bound": "a",
    "speed": "b",
    "memory": "c",
    "parse": "d",
    "throttle": "e",
    "disk": "f",
    "documents": "g",
    "quiet": "h",
    "resources": "i",
    "floor": "j",
    "day": "k",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=[*PARTS, *PARTS.values()],
        action="append",
        help="a part by name or letter (repeatable); all parts without it",
    )
    parser.add_argument("--days", type=int, default=30, help="days of the bound data set")
    parser.add_argument("--busy-runs", type=int, default=1, help="runs of (j)'s busy set")
    parser.add_argument(
        "--floor-rule",
        choices=list(FLOOR_RULES),
        action="append",
        help="a rule of (j) (repeatable); all of them without it",
    )
    parser.add_argument(
        "--floor-set",
        choices=list(FLOOR_SETS),
        action="append",
        help="a data set of (j) (repeatable); all of them without it",
    )
    parser.add_argument(
        "--no-sequential",
        action="store_true",
        help="skip the sequential loop of (a): it does not use the connector, and takes 15 min",
    )
    parser.add_argument("--scale", type=float, default=10.0, help="time scale of part (a)")
    parser.add_argument("--speed-invoices", type=int, default=50_000)
    parser.add_argument("--memory-invoices", type=int, default=50_000)
    parser.add_argument("--parse-invoices", type=int, default=5_000)
    parser.add_argument("--resources-invoices", type=int, default=RESOURCES_INVOICES)
    parser.add_argument(
        "--resources-out",
        type=Path,
        default=None,
        help=f"where (i) writes its figures (default {RESOURCES_JSON.relative_to(ROOT)}, "
        "only with the default --resources-invoices and at least 3 runs)",
    )
    args = parser.parse_args()
    letters = {letter: name for name, letter in PARTS.items()}
    parts = [letters.get(part, part) for part in args.only or PARTS]
    median = statistics.median
    print(f"machine: {machine()}")

    if "bound" in parts:
        runs = [bound_run(args.days, args.scale, seed) for seed in range(1, args.runs + 1)]
        print(
            f"\n(a) full read of all streams: {args.days} quiet and busy days, scale {args.scale:g}"
        )
        print("    bound = first_export + (D - 1) / r,  r = 0.0167/s x scale,")
        print("            first_export = the emulator's queue + processing time of the first")
        print("            export, scaled (no document exists before it is DONE)")
        for r in runs:
            print(
                f"    run: {r['documents']:.0f} documents, wall {r['wall']:.1f} s, "
                f"bound {r['bound']:.1f} s, ratio {r['ratio']:.3f}"
            )
        print(f"    median ratio to the bound: {median(r['ratio'] for r in runs):.3f}")
        ours = median(r["wall"] for r in runs)
        if args.no_sequential:
            print("    sequential one-day loop: skipped (--no-sequential)")
        else:
            baseline = [sequential_run(args.days, args.scale, s) for s in range(1, args.runs + 1)]
            print(
                f"    sequential one-day loop: median {median(baseline):.1f} s ({args.days} "
                f"documents); ours {ours:.1f} s; speed-up x{median(baseline) / ours:.2f}"
            )

    if "speed" in parts:
        print(f"\n(b) invoice_documents, limits lifted, {args.speed_invoices} invoices in one ZIP,")
        print("    `source-sp-invoices read` to /dev/null, process start (about 1.4 s) included")
        for parse_nfe, label in ((False, "raw XML records"), (True, "with NF-e header columns")):
            runs = [
                speed_run(args.speed_invoices, seed, parse_nfe) for seed in range(1, args.runs + 1)
            ]
            walls = ", ".join(f"{r['wall']:.1f}" for r in runs)
            print(
                f"    {label}: median {median(r['records_per_second'] for r in runs):,.0f} "
                f"records/s (walls {walls} s)"
            )

    if "parse" in parts:
        rates = [parse_rate(args.parse_invoices, seed) for seed in range(1, args.runs + 1)]
        print(f"\n(d) NF-e parsing, {args.parse_invoices} emulator invoices, one core, in-process")
        print(f"    median {median(rates):,.0f} invoices/s parsed into header and item records")

    if "memory" in parts:
        runs = [
            speed_run(args.memory_invoices, seed, measure_memory=True)
            for seed in range(1, args.runs + 1)
        ]
        print(
            f"\n(c) peak RSS of a read of {args.memory_invoices} invoices in one ZIP "
            f"({median(r['zip_mb'] for r in runs):.0f} MB, {median(r['xml_mb'] for r in runs):.0f} "
            "MB of XML)"
        )
        print(
            f"    median peak RSS {median(r['peak_rss_mb'] for r in runs):.0f} MB; "
            f"median {median(r['records_per_second'] for r in runs):,.0f} records/s"
        )

    if "throttle" in parts:
        print("\n(e) 429 answers / SP-API requests of a full read of all five streams, default")
        print(
            f"    usage plans, {args.days} days, scale {args.scale:g} (the sync completes in each)"
        )
        for storm, label in ((False, "healthy"), (True, f"429 storm ({STORM} x 2 per operation)")):
            runs = [
                throttle_run(args.days, args.scale, seed, storm) for seed in range(1, args.runs + 1)
            ]
            ratios = [r["throttled"] / r["requests"] for r in runs]
            detail = ", ".join(
                f"{r['throttled']:.0f}/{r['requests']:.0f} in {r['wall']:.0f} s" for r in runs
            )
            print(f"    {label}: median ratio {median(ratios):.4f} ({detail})")

    if "disk" in parts:
        runs = [disk_run(DISK_DAYS, 60.0, seed) for seed in range(1, args.runs + 1)]
        print(
            f"\n(f) temporary disk of a read of all five streams, {DISK_DAYS} quiet and busy days"
        )
        print("    in one-day windows (documents_window_days=1), scale 60; TMPDIR a fresh")
        print("    directory sampled every 10 ms (open files, unlinked too, and named files)")
        for r in runs:
            print(
                f"    run: {r['documents']:.0f} documents, peak {mb(r['peak'])} "
                f"({r['peak']:.0f} B), largest ZIP {mb(r['largest_zip'])} "
                f"({r['largest_zip']:.0f} B), all {r['zips']:.0f} ZIPs {mb(r['all_zips'])}, "
                f"{r['left']:.0f} file(s) left, "
                f"{r['samples']:.0f} samples in {r['wall']:.1f} s"
            )
        peak, largest = median(r["peak"] for r in runs), median(r["largest_zip"] for r in runs)
        print(
            f"    median peak {mb(peak)} ({peak:.0f} B); median largest ZIP {mb(largest)} "
            f"({largest:.0f} B), median sum of ZIPs "
            f"{mb(median(r['all_zips'] for r in runs))}; median "
            f"{median(r['documents'] for r in runs):.0f} documents; files left: "
            f"{', '.join(str(r['left']) for r in runs)}"
        )

    if "documents" in parts:
        days, scale = DOCUMENTS_DAYS, 60.0
        print(
            f"\n(g) documents fetched per stream selection, {days} quiet and busy days, "
            f"scale {scale:g},"
        )
        print("    default config, a fresh emulator per read (medians of the runs)")
        by_selection: dict[tuple[str, ...], list[dict[str, float]]] = {
            s: [] for s in DOCUMENT_SELECTIONS
        }
        killed: list[dict[str, float]] = []
        for seed in range(1, args.runs + 1):
            dataset = Dataset.generate(
                seed=seed, start=date(2024, 1, 1), days=days, invoices_per_day=day_profile()
            )
            for streams in DOCUMENT_SELECTIONS:
                by_selection[streams].append(selection_run(dataset, days, scale, streams))
            killed.append(killed_run(dataset, days, scale))
        for streams, runs in by_selection.items():
            label = "all five streams" if streams == ALL_STREAMS else " + ".join(streams)
            print(
                f"    {label + ':':<36} {median(r['documents'] for r in runs):.0f} documents, "
                f"{median(r['distinct'] for r in runs):.0f} distinct ids, "
                f"{median(r['exports'] for r in runs):.0f} exports "
                f"(documents per run {', '.join(str(r['documents']) for r in runs)})"
            )
        whole = by_selection[ALL_STREAMS]
        print("    all five streams killed mid-document once one was read, then resumed:")
        for plain, r in zip(whole, killed, strict=True):
            print(
                f"    run: uninterrupted {plain['documents']} documents, {plain['exports']} "
                f"exports ({plain['duplicate_starts']} duplicate dateStart); killed + resumed "
                f"{r['killed_documents']:.0f} + {r['resumed_documents']:.0f} = "
                f"{r['documents']:.0f} documents ({r['refetched']:.0f} ids fetched more than "
                f"once), {r['killed_exports']:.0f} + "
                f"{r['exports'] - r['killed_exports']:.0f} = {r['exports']:.0f} exports "
                f"({r['duplicate_starts']:.0f} duplicate dateStart)"
            )
        print(
            f"    median: uninterrupted {median(r['documents'] for r in whole):.0f} documents, "
            f"{median(r['exports'] for r in whole):.0f} exports; killed + resumed "
            f"{median(r['documents'] for r in killed):.0f} documents, "
            f"{median(r['refetched'] for r in killed):.0f} fetched more than once, "
            f"{median(r['exports'] for r in killed):.0f} exports, "
            f"{median(r['duplicate_starts'] for r in killed):.0f} duplicate dateStart"
        )

    if "quiet" in parts:
        days, per_day, scale = 60, 2, 60.0
        runs = [quiet_run(days, per_day, scale, seed) for seed in range(1, args.runs + 1)]
        print(
            f"\n(h) a quiet seller: {days} days of {per_day} invoices, invoice_documents and "
            "invoice_items,"
        )
        print(f"    default config, scale {scale:g}")
        print(f"    one_day_bound = first_export + ({days} - 1) / r,  r = 0.0167/s x scale")
        for r in runs:
            print(
                f"    run: wall {r['wall']:.1f} s, {r['documents']:.0f} documents, windows "
                f"{r['windows']} day(s), one-day bound {r['one_day_bound']:.1f} s, ratio "
                f"{r['ratio']:.3f}"
            )
        print(
            f"    median wall {median(r['wall'] for r in runs):.1f} s, median ratio to the "
            f"one-day bound {median(r['ratio'] for r in runs):.3f} (target <= 0.25)"
        )

    if "floor" in parts:
        print(
            "\n(j) documents fetched / ceil(N / M), every stream selected, default config, "
            f"scale {FLOOR_SCALE:g}"
        )
        print(f"    0.4.0 is run from git ({BASELINE_COMMIT}); medians of the runs")
        with tempfile.TemporaryDirectory() as directory:
            baseline = baseline_tree(directory)
            if baseline is None:
                print("    0.4.0: skipped (no git history here)")
            for name, (total, days, per_document) in FLOOR_SETS.items():
                if args.floor_set and name not in args.floor_set:
                    continue
                count = args.busy_runs if name == "busy" else args.runs
                print(f"    {name}: {total} invoices, {days} days, M {per_document}")
                for rule in FLOOR_RULES:
                    if args.floor_rule and rule not in args.floor_rule:
                        continue
                    runs = [floor_run(name, rule, seed, baseline) for seed in range(1, count + 1)]
                    done = [r for r in runs if r is not None]
                    if not done:
                        continue
                    firsts = [r["first_document"] for r in done if r["first_document"]]
                    own = [r["beyond_processing"] for r in done if r["first_document"]]
                    print(
                        f"      {rule + ':':<9} {median(r['documents'] for r in done):.0f} "
                        f"documents (runs {', '.join(str(r['documents']) for r in done)}), "
                        f"floor {done[0]['floor']}, ratio "
                        f"{median(r['ratio'] for r in done):.3f}; first document after "
                        f"{median(firsts):.0f} s of Amazon's time, {median(own):.0f} s beyond "
                        "the first export's processing; incremental sync "
                        f"{median(r['incremental'] for r in done):.0f} documents; wall "
                        f"{median(r['wall'] for r in done):.0f} s"
                    )

    if "day" in parts:
        print(
            f"\n(k) a seller's day: 24 hourly syncs after a {DAY_BACKFILL_DAYS}-day backfill, "
            f"every stream selected, default config, scale {FLOOR_SCALE:g}"
        )
        print(f"    0.5.0 is run from git ({BASELINE_0_5_0}); medians of {args.runs} runs")
        with tempfile.TemporaryDirectory() as directory:
            tree = tree_at(BASELINE_0_5_0, directory)
            if tree is None:
                print("    0.5.0: skipped (no git history here)")
            for name, (per_day, per_document) in DAY_SELLERS.items():
                print(f"    {name}: {per_day} invoices a day, M {per_document}")
                for version in ("this", "0.5.0"):
                    runs = [day_run(name, version, seed, tree) for seed in range(1, args.runs + 1)]
                    done = [r for r in runs if r is not None]
                    if not done:
                        continue
                    changed = median(r["changed"] for r in done)
                    ratios = ", ".join(
                        f"{stream} {median(r[stream] for r in done) / changed:.2f}"
                        for stream in DAY_STREAMS
                    )
                    print(
                        f"      {version + ':':<6} {median(r['documents'] for r in done):.0f} "
                        f"documents (runs {', '.join(str(r['documents']) for r in done)}), "
                        f"{median(r['exports'] for r in done):.0f} exports, records per invoice "
                        f"new or changed ({changed:.0f}): {ratios}; median sync "
                        f"{median(r['wall'] for r in done):.1f} s wall at scale {FLOOR_SCALE:g}, "
                        f"{median(r['amazon'] for r in done):.0f} s at Amazon's rates "
                        f"({median(r['amazon_day'] for r in done) / 60:.0f} min over the day); "
                        f"largest stream state {median(r['state_bytes'] for r in done):.0f} bytes; "
                        f"new or changed invoices missing from invoices or invoice_documents: "
                        f"{sum(r['missing'] for r in done)}"
                    )

    if "resources" in parts:
        invoices = args.resources_invoices
        runs = [resources_run(invoices, seed) for seed in range(1, args.runs + 1)]
        largest = median(r["largest_document_mib"] for r in runs)
        print("\n(i) resources: check, discover and a read of all five streams (NF-e columns on),")
        print(
            f"    one export of {invoices} invoices in one document ({largest:.0f} MiB); each "
            "command's VmHWM"
        )
        print("    and its fresh TMPDIR (open files, unlinked too, and named files) every 10 ms")
        figures: dict[str, Any] = {
            "measured_on": date.today().isoformat(),
            "machine": machine(),
            "source": "scripts/bench.py part (i), `make bench`",
            "units": "MiB (2^20 bytes)",
            "invoices": invoices,
            "streams": list(ALL_STREAMS),
            "runs": len(runs),
            "largest_document_mib": round(largest, 1),
        }
        for command in ("check", "discover", "read"):
            for r in runs:
                c = r[command]
                print(
                    f"    {command} run: peak RSS {c['peak_rss_mib']:.1f} MiB, peak temporary "
                    f"disk {c['peak_tmp_mib']:.2f} MiB, {c['files_left']:.0f} file(s) left, "
                    f"{c['samples']:.0f} samples in {c['wall']:.1f} s"
                )
            rss = median(r[command]["peak_rss_mib"] for r in runs)
            tmp = median(r[command]["peak_tmp_mib"] for r in runs)
            figures[command] = {
                "peak_rss_mib": round(rss, 1),
                "peak_tmp_mib": round(tmp, 2),
                "peak_tmp_bytes": median(r[command]["peak_tmp_bytes"] for r in runs),
                "runs_peak_rss_mib": [round(r[command]["peak_rss_mib"], 1) for r in runs],
                "runs_peak_tmp_mib": [round(r[command]["peak_tmp_mib"], 2) for r in runs],
            }
            print(
                f"    {command}: median peak RSS {rss:.1f} MiB, median peak temporary disk "
                f"{tmp:.2f} MiB"
            )
        print(f"    documents read per run: {', '.join(str(r['documents']) for r in runs)}")
        out = args.resources_out
        if out is None and invoices == RESOURCES_INVOICES and len(runs) >= 3:
            out = RESOURCES_JSON
        if out is None:
            print(
                f"    not written to {RESOURCES_JSON.relative_to(ROOT)}: not the default "
                "data set or fewer than 3 runs (--resources-out writes anywhere)"
            )
        else:
            out.write_text(json.dumps(figures, indent=2) + "\n")
            print(f"    written to {out}")


if __name__ == "__main__":
    main()
