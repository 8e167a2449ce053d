"""`make demo`: start the bundled SP-API emulator, run the real CLI against it, summarise the read.

Everything lands in .demo/ (config, catalog, the raw Airbyte messages), so that the commands it
prints can be run again by hand. `make demo FILES=1` (`--files`) adds a read with Airbyte's file
transfer: each invoice's XML staged in .demo/staging/, as a destination such as S3 would take it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".demo"
BIN = Path(sys.executable).parent
STREAMS = [
    "invoice_attributes",
    "invoices",
    "invoice_documents",
    "invoice_items",
    "invoice_exports",
]
FULL_REFRESH_ONLY = {"invoice_attributes"}


def start_emulator() -> tuple[subprocess.Popen[bytes], str]:
    ready = WORK / "emulator-url"
    ready.unlink(missing_ok=True)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sp_api_emulator",
            "--port",
            "0",
            "--seed",
            "7",
            "--start",
            "2024-01-01",
            "--days",
            "14",
            "--invoices-per-day",
            "0-25",
            "--time-scale",
            "120",
            "--ready-file",
            str(ready),
        ],
        cwd=ROOT,
        stdout=(WORK / "emulator.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not ready.exists() or not ready.read_text().strip():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the emulator did not start; see {WORK / 'emulator.log'}")
        time.sleep(0.1)
    return process, ready.read_text().strip()


def write_inputs(url: str) -> tuple[Path, Path]:
    config = {
        "lwa_app_id": "amzn1.application-oa2-client.emulator",
        "lwa_client_secret": "emulator-client-secret",
        "refresh_token": "Atzr|emulator-refresh-token",
        "replication_start_date": "2024-01-01T00:00:00Z",
        "replication_end_date": "2024-01-15T00:00:00Z",
        "api_endpoint": url,
        "lwa_endpoint": f"{url}/auth/o2/token",
    }
    catalog = {
        "streams": [
            {
                "stream": {
                    "name": name,
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "full_refresh" if name in FULL_REFRESH_ONLY else "incremental",
                "destination_sync_mode": "append",
            }
            for name in STREAMS
        ]
    }
    config_path, catalog_path = WORK / "config.json", WORK / "catalog.json"
    config_path.write_text(json.dumps(config, indent=2))
    catalog_path.write_text(json.dumps(catalog, indent=2))
    return config_path, catalog_path


def run(args: list[str], output: Path) -> list[dict]:
    command = [str(BIN / "source-sp-invoices"), *args]
    print(
        "$", " ".join(os.path.relpath(a, ROOT) if a.startswith(str(ROOT)) else a for a in command)
    )
    with output.open("wb") as sink:
        subprocess.run(command, stdout=sink, check=True, cwd=ROOT)
    return [json.loads(line) for line in output.read_text().splitlines() if line.startswith("{")]


def summarise(messages: list[dict]) -> None:
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    per_stream = Counter(r["stream"] for r in records)
    states = [m["state"] for m in messages if m["type"] == "STATE"]
    errors = [
        m["trace"] for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"
    ]
    print("\nRecords read:")
    for name in STREAMS:
        print(f"  {name:<20} {per_stream.get(name, 0):>6}")
    invoices = [r["data"] for r in records if r["stream"] == "invoices"]
    if invoices:
        statuses = Counter(i.get("status") for i in invoices)
        print(f"  invoice statuses: {dict(statuses)}")
        print("\nFirst invoice:")
        print("  " + json.dumps(invoices[0], ensure_ascii=False))
    documents = [r["data"] for r in records if r["stream"] == "invoice_documents"]
    if documents:
        files = {d["invoicesDocumentId"] for d in documents}
        exports = {d["exportId"] for d in documents}
        days = sorted({d["dateStart"] for d in documents} | {d["dateEnd"] for d in documents})
        print(
            f"\ninvoice_documents: {len(documents)} invoice XML files from {len(files)} "
            f"document(s) of {len(exports)} export(s), {days[0]} to {days[-1]}"
        )
        first = documents[0]
        columns = ("accessKey", "number", "issuedAt", "issuerName", "recipientName", "totalInvoice")
        print("  NF-e columns of the first: " + ", ".join(f"{c}={first.get(c)}" for c in columns))
    items = [r["data"] for r in records if r["stream"] == "invoice_items"]
    if items:
        item = items[0]
        columns = ("itemNumber", "description", "ncm", "cfop", "commercialQuantity", "unitValue")
        print(f"invoice_items: {len(items)} items; the first: ")
        print("  " + ", ".join(f"{c}={item.get(c)}" for c in columns))
    if states:
        last = {
            s["stream"]["stream_descriptor"]["name"]: s["stream"]["stream_state"] for s in states
        }
        print("\nLast state of each stream (an incremental sync continues from here):")
        for name, state in last.items():
            shown = dict(state)
            for key in ("delivered", "pending"):  # one fixed-size sketch per slot: summarised
                if key in shown:
                    size = len(json.dumps(shown[key]))
                    shown[key] = f"<{len(shown[key])} slot(s) of the lookback, {size:,} bytes>"
            print(f"  {name:<20} {json.dumps(shown)}")
    if errors:
        raise SystemExit(f"the read failed: {errors[0]['error']['message']}")


def incremental(config: Path, catalog: Path, first: list[dict]) -> None:
    """Read again from the first read's final state, as Airbyte's next sync would: with the
    state of the incremental streams (a full refresh stream starts over in a new sync)."""
    configured = json.loads(catalog.read_text())["streams"]
    incremental_streams = {
        c["stream"]["name"] for c in configured if c["sync_mode"] == "incremental"
    }
    final: dict[str, dict] = {}
    for message in (m for m in first if m["type"] == "STATE"):
        name = message["state"]["stream"]["stream_descriptor"]["name"]
        if name in incremental_streams:
            final[name] = message["state"]
    state = WORK / "state.json"
    state.write_text(json.dumps(list(final.values()), indent=2))
    print(
        "\nThe next sync, from that state, with nothing new since: it lists the lookback days "
        "again and compares them with what was delivered (lookback_exports: changed_days):"
    )
    messages = run(
        ["read", "--config", str(config), "--catalog", str(catalog), "--state", str(state)],
        WORK / "read-incremental.jsonl",
    )
    logs = [m["log"]["message"] for m in messages if m["type"] == "LOG"]
    said = next((line for line in logs if "day(s) looked back at" in line), None)
    if said:
        print(f"  {said}")
    created = sum("created export" in line for line in logs)
    documents = sum(": document " in line and "downloaded and read" in line for line in logs)
    print(f"  {created} export(s) created, {documents} document(s) fetched; records:")
    per_stream = Counter(m["record"]["stream"] for m in messages if m["type"] == "RECORD")
    for name in STREAMS:
        print(f"  {name:<20} {per_stream.get(name, 0):>6}")
    exports = [
        m["record"]["data"]
        for m in messages
        if m["type"] == "RECORD" and m["record"]["stream"] == "invoice_exports"
    ]
    if exports:
        statuses = Counter(e.get("status") for e in exports)
        print(f"  invoice_exports lists the exports created so far: {dict(statuses)}")
    print(
        "  (invoice_attributes is a full refresh: its options come again every sync; "
        "invoice_exports, the export jobs, lists again those of its lookback.)"
    )


def file_transfer(config: Path) -> None:
    """Read invoice_documents again with its files asked for (delivery_method Copy Raw Files),
    staged under .demo/staging/ as Airbyte's platform stages them for a destination."""
    staging = WORK / "staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    files_config = WORK / "config-files.json"
    raw = json.loads(config.read_text())
    raw["delivery_method"] = {"delivery_type": "use_file_transfer"}
    files_config.write_text(json.dumps(raw, indent=2))
    files_catalog = WORK / "catalog-files.json"
    stream = {
        "name": "invoice_documents",
        "json_schema": {},
        "supported_sync_modes": ["full_refresh"],
    }
    files_catalog.write_text(
        json.dumps(
            {
                "streams": [
                    {
                        "stream": stream,
                        "sync_mode": "full_refresh",
                        "destination_sync_mode": "overwrite",
                        "include_files": True,
                    }
                ]
            },
            indent=2,
        )
    )
    print(
        "\nThe invoice files through Airbyte's file transfer (delivery_method Copy Raw Files), "
        "staged in .demo/staging as a destination such as S3 takes them:"
    )
    os.environ["AIRBYTE_STAGING_DIRECTORY"] = str(staging)
    print(f"$ export AIRBYTE_STAGING_DIRECTORY={os.path.relpath(staging, ROOT)}")
    messages = run(
        ["read", "--config", str(files_config), "--catalog", str(files_catalog)],
        WORK / "read-files.jsonl",
    )
    records = [m["record"] for m in messages if m["type"] == "RECORD"]
    staged = sorted(p for p in staging.rglob("*.xml"))
    months = Counter(p.parent.relative_to(p.parents[2]).as_posix() for p in staged)
    print(f"  {len(staged)} files staged, {sum(p.stat().st_size for p in staged):,} bytes:")
    for month, count in sorted(months.items()):
        print(f"    {month}/  {count} file(s)")
    for path in staged[:3]:
        print(f"    {path.relative_to(staging)}")
    if records:
        record = records[0]
        print("  the first record's file_reference (its xml column is left out: the file is it):")
        print("  " + json.dumps(record.get("file_reference"), indent=2).replace("\n", "\n  "))
        print(f"  its columns include xml: {'xml' in record['data']}")
    errors = [m for m in messages if m["type"] == "TRACE" and m["trace"]["type"] == "ERROR"]
    if errors:
        raise SystemExit(f"the read failed: {errors[0]['trace']['error']['message']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--files", action="store_true", help="also read with the invoice files (file transfer)"
    )
    args = parser.parse_args()
    WORK.mkdir(exist_ok=True)
    if not shutil.which(str(BIN / "source-sp-invoices")):
        raise SystemExit("source-sp-invoices is not installed: run `make demo`")
    emulator, url = start_emulator()
    print(f"SP-API emulator running at {url} (log: .demo/emulator.log)")
    try:
        config, catalog = write_inputs(url)
        status = [
            m
            for m in run(["check", "--config", str(config)], WORK / "check.jsonl")
            if m["type"] == "CONNECTION_STATUS"
        ]
        print(f"  check: {status[0]['connectionStatus']['status']}")
        messages = run(
            ["read", "--config", str(config), "--catalog", str(catalog)], WORK / "read.jsonl"
        )
        summarise(messages)
        incremental(config, catalog, messages)
        if args.files:
            file_transfer(config)
        else:
            print("\n`make demo FILES=1` also shows a read with the invoice files (file transfer).")
        also = " and .demo/read-files.jsonl" if args.files else ""
        print(
            f"\nAll Airbyte messages are in .demo/read.jsonl, .demo/read-incremental.jsonl{also}."
        )
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
