"""Measure the hand-written ZIP reader against the standard library's zipfile and stream-unzip.

On the 50,000-invoice export document of `make bench` (b) (built by the emulator the same way:
one day of 50,000 invoices, seed 1, one document), each variant produces every entry as
(file_name, invoice_id, decoded XML text, bytes), the output of the hand-written reader:

  1 read_entries          the hand-written reader over the complete file (ISA-L + libdeflate)
  2 read_entries-zlib     the same with isal/deflate disabled (plain zlib, monkeypatched here)
  3 stream_entries        the hand-written streaming reader over the file, download finished
  4 zipfile               zipfile.ZipFile over the (buffered) file: same size bound, capped read
  4b zipfile-unbuffered   the same over an unbuffered file, as the connector's temp file is
  5 stream-unzip          stream_unzip over the file in 64 KB chunks, same bound

Every timed run is a fresh child process (so peak RSS is its own): the time to produce every
entry, and the growth of RSS above the process's RSS before the read (VmHWM reset through
/proc/self/clear_refs). One more run per variant under tracemalloc gives the peak of Python
allocations. Variants 2-5 are checked entry by entry against variant 1 (names, ids, text, bytes).

Then the pipelines over loopback, the ZIP served by a small http.server in this process:

  P1 download             requests iter_content(1 MB) into a temporary file
  P2 download+zipfile     P1, then variant 4 over that file: the "download fully" pipeline
  P3 overlapped           the connector's BackgroundDownload + stream_entries (read while it grows)
  P4 stream-unzip/http    stream_unzip fed straight from iter_content(64 KB), no file

And, with --connector, `make bench` (b)/(c) itself: `source-sp-invoices read` of that export to
/dev/null against the emulator (limits lifted, bench's settings), wall time incl. process start
and peak RSS (VmHWM of the read's process), as it is and through scripts/zipfile_connector.py,
which swaps the pipeline's stream_entries for "wait for the whole download, then zipfile".

The code measured is the importable `source_sp_invoices` under --code-root (default: the repo);
the old (source_sp_invoices.zip_reader) and the new (source_sp_invoices.export_pipeline.*)
module layout are both understood.

    .venv/bin/python scripts/measure_readers.py [--runs 3] [--connector] [--code-root DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import importlib
import importlib.util
import io
import json
import os
import platform
import shutil
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
CACHE = Path(tempfile.gettempdir()) / "sp-invoices-measure"
SLOT_SECONDS = 60.0  # getInvoicesDocument: 0.0167 requests/s, burst 1
STREAM_UNZIP_CHUNK = 64 * 1024


def code_root() -> Path:
    return Path(os.environ.get("SP_INVOICES_CODE_ROOT") or ROOT)


def use_code_root() -> None:
    root = str(code_root())
    if root not in sys.path[:1]:
        sys.path.insert(0, root)


def import_first(*names: str) -> Any:
    """The first of the modules whose file is under the code root (the package is being
    reorganised; the editable install would otherwise fill a gap from the work tree)."""
    for name in names:
        if (code_root() / (name.replace(".", "/") + ".py")).exists():
            module = importlib.import_module(name)
            assert Path(module.__file__).resolve().is_relative_to(code_root().resolve()), module
            return module
    raise ImportError(f"none of {names} under {code_root()}")


def zip_reader() -> Any:
    use_code_root()
    return import_first(
        "source_sp_invoices.export_pipeline.zip_reader", "source_sp_invoices.zip_reader"
    )


def downloads() -> Any:
    use_code_root()
    return import_first(
        "source_sp_invoices.export_pipeline.downloads", "source_sp_invoices.downloads"
    )


def pipeline_module() -> Any:
    """The module whose `_entries` calls `stream_entries` (the export pipeline)."""
    use_code_root()
    return import_first("source_sp_invoices.export_pipeline.pipeline", "source_sp_invoices.exports")


def settings() -> Any:
    use_code_root()
    return importlib.import_module("source_sp_invoices.settings")


# --- the readers ---------------------------------------------------------------------------


def zipfile_entries(
    file: IO[bytes],
    skip: frozenset[str] = frozenset(),
    max_entry_bytes: int | None = None,
) -> Iterator[Any]:
    """Every XML entry of the ZIP in `file` with the standard library's zipfile: the entries
    and errors of the hand-written read_entries (XmlEntry, InvalidEntry, CorruptDocument)."""
    zr = zip_reader()
    bound = settings().MAX_XML_ENTRY_BYTES if max_entry_bytes is None else max_entry_bytes
    try:
        archive = zipfile.ZipFile(file)
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, UnicodeDecodeError) as error:
        raise zr.CorruptDocument(f"not a readable ZIP: {error}") from error
    for info in members:
        if info.is_dir() or info.filename in skip:
            continue
        if info.file_size > bound:
            raise zr.InvalidEntry(
                f"{info.filename} would decompress to {info.file_size} bytes, more than the "
                f"limit of {bound}"
            )
        try:
            # zipfile never returns more than the header's file_size, and checks the CRC-32
            # once it has: a header that lies about the size ends in BadZipFile, not in memory.
            # The cap is a second guard.
            with archive.open(info) as entry:
                data = entry.read(bound + 1)
            if len(data) > bound:
                raise zr.InvalidEntry(f"{info.filename} decompresses past {bound} bytes")
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as error:
            raise zr.CorruptDocument(f"entry {info.filename} cannot be read: {error}") from error
        try:
            text = zr.decode_xml(data)
        except zr.InvalidEntry as error:
            raise zr.InvalidEntry(f"{info.filename} {error}") from None
        yield zr.XmlEntry(info.filename, zr.invoice_id_of(info.filename), text, data)


def stream_unzip_entries(
    chunks: Iterable[bytes], max_entry_bytes: int | None = None
) -> Iterator[Any]:
    """Every XML entry of a ZIP arriving in chunks, read by stream-unzip, same bound."""
    from stream_unzip import UnzipError, stream_unzip

    zr = zip_reader()
    bound = settings().MAX_XML_ENTRY_BYTES if max_entry_bytes is None else max_entry_bytes
    try:
        for raw_name, size, contents in stream_unzip(chunks, chunk_size=STREAM_UNZIP_CHUNK):
            # stream-unzip does not say whether the UTF-8 flag is set: UTF-8, as NF-e names are.
            name = raw_name.decode("utf-8", errors="replace")
            if name.endswith("/"):
                for _ in contents:
                    pass
                continue
            if size is not None and size > bound:
                raise zr.InvalidEntry(
                    f"{name} would decompress to {size} bytes, more than the limit of {bound}"
                )
            parts, total = [], 0
            for part in contents:
                total += len(part)
                if total > bound:
                    raise zr.InvalidEntry(f"{name} decompresses past {bound} bytes")
                parts.append(part)
            data = b"".join(parts)
            try:
                text = zr.decode_xml(data)
            except zr.InvalidEntry as error:
                raise zr.InvalidEntry(f"{name} {error}") from None
            yield zr.XmlEntry(name, zr.invoice_id_of(name), text, data)
    except UnzipError as error:
        raise zr.CorruptDocument(f"not a readable ZIP: {type(error).__name__} {error}") from error


class CompleteFile:
    """A finished download as the hand-written streaming reader sees it (GrowingZip)."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._fd = self._file.fileno()

    def read_at(self, offset: int, size: int, at_least: int | None = None) -> bytes:
        return os.pread(self._fd, size, offset)

    def whole(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()


def file_chunks(path: Path, size: int = STREAM_UNZIP_CHUNK) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(size):
            yield chunk


def disable_native_inflaters() -> None:
    """Plain zlib in the hand-written reader: what it does when isal/deflate are missing."""
    zr = zip_reader()
    zr._inflater = zlib
    zr._inflate_whole = None
    zr._DeflateError = zlib.error
    zr._crc32 = zlib.crc32


VARIANTS = {
    "read_entries": "1 hand-written read_entries (isal+deflate)",
    "read_entries-zlib": "2 hand-written read_entries, plain zlib",
    "stream_entries": "3 hand-written stream_entries (download done)",
    "zipfile": "4 stdlib zipfile (buffered file)",
    "zipfile-unbuffered": "4b stdlib zipfile (unbuffered file)",
    "stream-unzip": "5 stream-unzip, 64 KB chunks",
}


def entries_of(variant: str, path: Path) -> tuple[Iterator[Any], list[Any]]:
    """The variant's entries and what to close once they are read."""
    zr = zip_reader()
    if variant in ("read_entries", "read_entries-zlib"):
        if variant == "read_entries-zlib":
            disable_native_inflaters()
        file = open(path, "rb", buffering=0)  # noqa: SIM115 - as the connector's temp file
        return zr.read_entries(file), [file]
    if variant == "stream_entries":
        source = CompleteFile(path)
        return zr.stream_entries(source), [source]
    if variant == "zipfile":
        file = open(path, "rb")  # noqa: SIM115
        return zipfile_entries(file), [file]
    if variant == "zipfile-unbuffered":
        file = open(path, "rb", buffering=0)  # noqa: SIM115
        return zipfile_entries(file), [file]
    if variant == "stream-unzip":
        return stream_unzip_entries(file_chunks(path)), []
    raise ValueError(variant)


# --- memory --------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> int:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); return that RSS in kB."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


# --- child: one timed run ------------------------------------------------------------------


def consume(entries: Iterable[Any]) -> tuple[int, int]:
    count = size = 0
    for entry in entries:
        count += 1
        size += len(entry.data)
    return count, size


def child_variant(variant: str, path: Path, trace: bool) -> dict[str, Any]:
    zip_reader()  # imports outside the measurement
    import tracemalloc

    if variant == "stream-unzip":
        import stream_unzip  # noqa: F401
    if trace:
        tracemalloc.start()
    baseline = reset_peak()
    started = time.perf_counter()
    entries, closers = entries_of(variant, path)
    count, size = consume(entries)
    seconds = time.perf_counter() - started
    peak = _status_kb("VmHWM")
    traced = tracemalloc.get_traced_memory()[1] if trace else 0
    for closer in closers:
        closer.close()
    return {
        "seconds": seconds,
        "entries": count,
        "bytes": size,
        "rss_delta_mb": (peak - baseline) / 1024,
        "baseline_mb": baseline / 1024,
        "traced_peak_mb": traced / 2**20,
    }


def http_chunks(url: str, size: int) -> tuple[Any, Iterator[bytes]]:
    import requests

    session = requests.Session()
    response = session.get(url, stream=True, timeout=(10, 120))
    response.raise_for_status()

    def body() -> Iterator[bytes]:
        try:
            yield from response.iter_content(size)
        finally:
            response.close()
            session.close()

    return response, body()


def child_pipeline(pipeline: str, url: str) -> dict[str, Any]:
    zr = zip_reader()
    dl = downloads()
    import requests  # noqa: F401

    if pipeline == "stream-unzip-http":
        import stream_unzip  # noqa: F401
    chunk = settings().DOWNLOAD_CHUNK_BYTES
    baseline = reset_peak()
    started = time.perf_counter()
    result: dict[str, Any] = {}
    if pipeline in ("download", "download+zipfile"):
        _, body = http_chunks(url, chunk)
        with tempfile.TemporaryFile(prefix="sp-measure-") as file:
            received = 0
            for part in body:
                file.write(part)
                received += len(part)
            file.flush()
            result["download_seconds"] = time.perf_counter() - started
            result["zip_bytes"] = received
            count = size = 0
            if pipeline == "download+zipfile":
                file.seek(0)
                read_started = time.perf_counter()
                count, size = consume(zipfile_entries(file))
                result["read_seconds"] = time.perf_counter() - read_started
    elif pipeline == "overlapped":
        _, body = http_chunks(url, chunk)
        with dl.BackgroundDownload(body) as source:
            assert zr.body_kind(source) == zr.ZIP
            count, size = consume(zr.stream_entries(source))
            result["zip_bytes"] = source.size
    elif pipeline == "stream-unzip-http":
        _, body = http_chunks(url, STREAM_UNZIP_CHUNK)
        count, size = consume(stream_unzip_entries(body))
    else:
        raise ValueError(pipeline)
    result.update(
        seconds=time.perf_counter() - started,
        entries=count,
        bytes=size,
        rss_delta_mb=(_status_kb("VmHWM") - baseline) / 1024,
        baseline_mb=baseline / 1024,
    )
    return result


def child_verify(path: Path) -> dict[str, Any]:
    """Variants 2-5 against variant 1, entry by entry, in lockstep."""
    results: dict[str, Any] = {}
    for variant in [v for v in VARIANTS if v not in ("read_entries", "read_entries-zlib")]:
        reference, closers = entries_of("read_entries", path)
        other, more = entries_of(variant, path)
        results[variant] = compare(reference, other)
        for closer in closers + more:
            closer.close()
    # plain zlib last: it changes the module for the rest of the process
    reference_list = entry_digests(entries_of("read_entries", path)[0])
    disable_native_inflaters()
    results["read_entries-zlib"] = (
        "identical"
        if entry_digests(entries_of("read_entries", path)[0]) == reference_list
        else "DIFFERENT"
    )
    return results


def compare(reference: Iterator[Any], other: Iterator[Any]) -> str:
    count = 0
    sentinel = object()
    while True:
        a, b = next(reference, sentinel), next(other, sentinel)
        if a is sentinel and b is sentinel:
            return f"identical ({count} entries: names, ids, text, bytes)"
        if a is sentinel or b is sentinel:
            return f"DIFFERENT: one ends after {count} entries"
        if tuple(a) != tuple(b):
            return f"DIFFERENT at entry {count}: {a.file_name} / {b.file_name}"
        count += 1


def entry_digests(entries: Iterable[Any]) -> list[tuple[str, str, str]]:
    return [
        (
            e.file_name,
            e.invoice_id,
            hashlib.blake2b(e.data).hexdigest() + hashlib.blake2b(e.xml.encode()).hexdigest(),
        )
        for e in entries
    ]


def child_safety() -> dict[str, str]:
    """What each reader does with a too-large entry, a header that lies about the size, a
    truncated ZIP (bound 1 MB here, to keep the bombs small)."""
    zr = zip_reader()
    bound = 1024 * 1024
    xml = b'<?xml version="1.0" encoding="UTF-8"?><a>' + b"x" * 1000 + b"</a>"
    big = b'<?xml version="1.0" encoding="UTF-8"?><a>' + b" " * (20 * bound) + b"</a>"

    def build(entries: list[tuple[str, bytes]]) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in entries:
                archive.writestr(name, data)
        return buffer.getvalue()

    honest_bomb = build([("1.xml", xml), ("bomb.xml", big)])
    # the same bomb whose headers (local and central) claim 1,000 bytes
    lying = bytearray(honest_bomb)
    real = len(big).to_bytes(4, "little")
    at = 0
    while (at := lying.find(real, at)) >= 0:
        lying[at : at + 4] = (1000).to_bytes(4, "little")
        at += 4
    lying = bytes(lying)
    whole = build([(f"{i}.xml", xml) for i in range(50)])
    directory_at = whole.find(b"PK\x01\x02")
    mid_entries = whole[: directory_at // 2]  # cut in the middle of the entries
    mid_directory = whole[: len(whole) - 40]  # every entry whole, the directory cut short

    readers = {
        "read_entries": lambda data: zr.read_entries(io.BytesIO(data), max_entry_bytes=bound),
        "stream_entries": lambda data: zr.stream_entries(_BytesSource(data), max_entry_bytes=bound),
        "zipfile": lambda data: zipfile_entries(io.BytesIO(data), max_entry_bytes=bound),
        "stream-unzip": lambda data: stream_unzip_entries(
            (data[i : i + STREAM_UNZIP_CHUNK] for i in range(0, len(data), STREAM_UNZIP_CHUNK)),
            max_entry_bytes=bound,
        ),
    }
    if "stream-unzip" not in VARIANTS:
        del readers["stream-unzip"]
    results = {}
    cases = (
        ("20 MB entry", honest_bomb),
        ("lying size", lying),
        ("cut mid-entries", mid_entries),
        ("cut in directory", mid_directory),
    )
    for case, data in cases:
        for reader, read in readers.items():
            reset_peak_value = reset_peak()
            try:
                count, _ = consume(read(data))
                outcome = f"no error, {count} entries"
            except Exception as error:  # noqa: BLE001 - reported
                outcome = f"{type(error).__name__}: {str(error)[:100]}"
            grown = (_status_kb("VmHWM") - reset_peak_value) / 1024
            results[f"{case} / {reader}"] = f"{outcome} (RSS +{grown:.0f} MB)"
    return results


class _BytesSource:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def read_at(self, offset: int, size: int, at_least: int | None = None) -> bytes:
        return self._data[offset : offset + size]

    def whole(self) -> IO[bytes]:
        return io.BytesIO(self._data)


# --- parent --------------------------------------------------------------------------------


def run_child(*arguments: str) -> dict[str, Any]:
    environment = dict(os.environ, SP_INVOICES_CODE_ROOT=str(code_root()))
    output = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *arguments],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


class _Handler(http.server.BaseHTTPRequestHandler):
    path_to_serve: Path

    def do_GET(self) -> None:  # noqa: N802
        size = self.path_to_serve.stat().st_size
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(self.path_to_serve, "rb") as file:
            while block := file.read(1024 * 1024):
                self.wfile.write(block)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(path: Path) -> tuple[_Server, str]:
    handler = type("Handler", (_Handler,), {"path_to_serve": path})
    server = _Server(("localhost", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://localhost:{server.server_address[1]}/document.zip"


def emulator(invoices: int, seed: int) -> Any:
    """bench.py's emulator of (b): limits lifted, one document of everything."""
    use_code_root()
    sys.path.insert(0, str(SCRIPTS))
    import bench

    return bench.one_document_emulator(invoices, seed)


def emulator_config(server: Any) -> dict[str, Any]:
    """bench.py's config of (b): raw XML records."""
    import bench

    return bench.one_document_config(server, parse_nfe=False)


def connector_read(config: dict[str, Any], wrapper: bool) -> dict[str, float]:
    """`source-sp-invoices read` of invoice_documents to /dev/null: wall and peak RSS."""
    catalog = {
        "streams": [
            {
                "stream": {
                    "name": "invoice_documents",
                    "json_schema": {},
                    "supported_sync_modes": ["full_refresh", "incremental"],
                },
                "sync_mode": "incremental",
                "destination_sync_mode": "append",
            }
        ]
    }
    cli = Path(sys.executable).parent / "source-sp-invoices"
    environment = dict(os.environ, SP_INVOICES_CODE_ROOT=str(code_root()))
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(code_root())] + ([environment["PYTHONPATH"]] if environment.get("PYTHONPATH") else [])
    )
    with tempfile.TemporaryDirectory() as directory:
        config_path, catalog_path = Path(directory, "c.json"), Path(directory, "k.json")
        config_path.write_text(json.dumps(config))
        catalog_path.write_text(json.dumps(catalog))
        arguments = ["read", "--config", str(config_path), "--catalog", str(catalog_path)]
        command = (
            [sys.executable, str(SCRIPTS / "zipfile_connector.py"), *arguments]
            if wrapper
            else [str(cli), *arguments]
        )
        started = time.monotonic()
        with open(os.devnull, "wb") as sink:
            process = subprocess.Popen(command, stdout=sink, env=environment)
        status, peak = Path(f"/proc/{process.pid}/status"), 0
        while process.poll() is None:
            try:
                hwm = next(ln for ln in status.read_text().splitlines() if ln.startswith("VmHWM"))
                peak = max(peak, int(hwm.split()[1]))
            except (OSError, StopIteration):
                pass
            time.sleep(0.02)
        wall = time.monotonic() - started
        if process.returncode != 0:
            raise RuntimeError(f"the read failed ({process.returncode})")
    return {"wall": wall, "peak_rss_mb": peak / 1024}


def ensure_zip(invoices: int, seed: int, connector_runs: int) -> tuple[Path, dict[str, Any]]:
    """The cached export ZIP (built by the emulator, through one connector read, as bench (b)
    does), and the connector's figures when asked."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"export-{invoices}-seed{seed}.zip"
    figures: dict[str, Any] = {}
    if path.exists() and not connector_runs:
        return path, figures
    with emulator(invoices, seed) as server:
        config = emulator_config(server)
        print(f"building the {invoices}-invoice document with the emulator ...", flush=True)
        started = time.monotonic()
        first = connector_read(config, wrapper=False)  # builds the ZIP, as bench's first read
        print(
            f"  built and read once in {time.monotonic() - started:.1f} s "
            f"(that read: {first['wall']:.1f} s)",
            flush=True,
        )
        built = list(Path(server.zips.directory).glob("**/*.zip"))
        assert len(built) == 1, built
        if not path.exists():
            shutil.copyfile(built[0], path.with_suffix(".part"))
            os.replace(path.with_suffix(".part"), path)
        labels = {False: "hand-written", True: "zipfile_connector"}
        for _ in range(connector_runs):  # interleaved, so that drift in load hits both
            for wrapper, label in labels.items():
                figures.setdefault(label, []).append(connector_read(config, wrapper))
        for label, runs in figures.items():
            print(
                f"  connector read ({label}): walls "
                + ", ".join(f"{r['wall']:.2f}" for r in runs)
                + " s; peak RSS "
                + ", ".join(f"{r['peak_rss_mb']:.0f}" for r in runs)
                + " MB",
                flush=True,
            )
    return path, figures


def machine() -> str:
    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((ln.split(":")[1].strip() for ln in cpuinfo if "model name" in ln), "?")
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {os.cpu_count()} cores ({cpu})"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("isal", "deflate", "stream-unzip", "stream-inflate", "airbyte-cdk", "requests"):
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--invoices", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--code-root", help="directory holding the source_sp_invoices to measure")
    parser.add_argument(
        "--connector",
        action="store_true",
        help="also time `source-sp-invoices read` as is and with zipfile (bench (b)/(c))",
    )
    parser.add_argument("--skip-readers", action="store_true")
    parser.add_argument("--skip-pipelines", action="store_true")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code_root:
        os.environ["SP_INVOICES_CODE_ROOT"] = str(Path(args.code_root).resolve())

    if importlib.util.find_spec("stream_unzip") is None:  # parent and children alike
        VARIANTS.pop("stream-unzip", None)
    if args.child:
        kind, *rest = args.child
        if kind == "variant":
            result: Any = child_variant(rest[0], Path(rest[1]), trace=rest[2] == "trace")
        elif kind == "pipeline":
            result = child_pipeline(rest[0], rest[1])
        elif kind == "verify":
            result = child_verify(Path(rest[0]))
        elif kind == "safety":
            result = child_safety()
        else:
            raise ValueError(kind)
        print(json.dumps(result))
        return

    median = statistics.median
    if "stream-unzip" not in VARIANTS:
        print("stream-unzip is not installed (.venv/bin/pip install stream-unzip): skipped")
    print(f"machine: {machine()}")
    print(f"versions: {versions()}")
    print(f"code measured: {code_root()}")
    print(f"load average at start: {os.getloadavg()}")
    path, connector = ensure_zip(args.invoices, args.seed, args.runs if args.connector else 0)
    zip_mb = path.stat().st_size / 2**20
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        xml_mb = sum(i.file_size for i in infos) / 2**20
    print(f"document: {path} ({zip_mb:.0f} MB, {len(infos)} entries, {xml_mb:.0f} MB of XML)")

    readers: dict[str, dict[str, float]] = {}
    if not args.skip_readers:
        print("\nchecking variants 2-5 against variant 1 ...", flush=True)
        for variant, outcome in run_child("verify", str(path)).items():
            print(f"  {variant}: {outcome}")
        print("\nsafety (bound 1 MB): too large, lying header, truncated", flush=True)
        for case, outcome in run_child("safety").items():
            print(f"  {case}: {outcome}")
        print(
            f"\nreaders, {args.runs} rounds of every variant (a fresh process per run) ...",
            flush=True,
        )
        reader_runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
        for _ in range(args.runs):  # round-robin: drift in the machine's load hits every variant
            for variant in VARIANTS:
                reader_runs[variant].append(run_child("variant", variant, str(path), "time"))
        for variant, runs in reader_runs.items():
            traced = run_child("variant", variant, str(path), "trace")
            assert all(r["entries"] == len(infos) for r in runs + [traced]), variant
            seconds = median(r["seconds"] for r in runs)
            readers[variant] = {
                "seconds": seconds,
                "best": min(r["seconds"] for r in runs),
                "rate": len(infos) / seconds,
                "rss": median(r["rss_delta_mb"] for r in runs),
                "traced": traced["traced_peak_mb"],
            }
            print(
                f"  {variant}: " + ", ".join(f"{r['seconds']:.2f}" for r in runs) + " s",
                flush=True,
            )

    pipelines: dict[str, dict[str, float]] = {}
    if not args.skip_pipelines:
        server, url = serve(path)
        print(f"\npipelines over loopback ({url}), {args.runs} runs each ...", flush=True)
        try:
            names = ("download", "download+zipfile", "overlapped") + (
                ("stream-unzip-http",) if "stream-unzip" in VARIANTS else ()
            )
            pipeline_runs: dict[str, list[dict[str, Any]]] = {p: [] for p in names}
            for _ in range(args.runs):
                for pipeline in names:
                    pipeline_runs[pipeline].append(run_child("pipeline", pipeline, url))
            for pipeline, runs in pipeline_runs.items():
                print(
                    f"  {pipeline}: " + ", ".join(f"{r['seconds']:.2f}" for r in runs) + " s",
                    flush=True,
                )
                pipelines[pipeline] = {
                    "seconds": median(r["seconds"] for r in runs),
                    "best": min(r["seconds"] for r in runs),
                    "rss": median(r["rss_delta_mb"] for r in runs),
                    "download": median(r.get("download_seconds", 0.0) for r in runs),
                    "read": median(r.get("read_seconds", 0.0) for r in runs),
                }
        finally:
            server.shutdown()

    n = len(infos)
    print(f"\nload average at the end: {os.getloadavg()}")
    print(f"\n=== {n} invoices, {zip_mb:.0f} MB ZIP, {xml_mb:.0f} MB XML; medians of {args.runs}")
    print(
        f"{'variant':<48} {'seconds':>8} {'best':>6} {'entries/s':>10} {'RSS +MB':>8} "
        f"{'traced MB':>10}"
    )
    for variant, r in readers.items():
        print(
            f"{VARIANTS[variant]:<48} {r['seconds']:>8.2f} {r['best']:>6.2f} {r['rate']:>10,.0f} "
            f"{r['rss']:>8.1f} {r['traced']:>10.1f}"
        )
    labels = {
        "download": "P1 download only, to a temp file (no entries)",
        "download+zipfile": "P2 download fully, then zipfile",
        "overlapped": "P3 BackgroundDownload + stream_entries (now)",
        "stream-unzip-http": "P4 stream-unzip fed from the socket",
    }
    for pipeline, r in pipelines.items():
        extra = f"   (download {r['download']:.2f} s + read {r['read']:.2f} s)" if r["read"] else ""
        print(
            f"{labels[pipeline]:<48} {r['seconds']:>8.2f} {r['best']:>6.2f} "
            f"{n / r['seconds']:>10,.0f} "
            f"{r['rss']:>8.1f} {'':>10}{extra}"
        )
    if "download+zipfile" in pipelines:
        total = pipelines["download+zipfile"]["seconds"]
        read = pipelines["download+zipfile"]["read"] or readers.get("zipfile", {}).get("seconds", 0)
        print(
            f"\n'download then zipfile' total {total:.2f} s against the {SLOT_SECONDS:.0f} s "
            f"document slot: {total / SLOT_SECONDS:.1%} of it; it stays within the slot while "
            f"the download runs at {zip_mb / (SLOT_SECONDS - read):.1f} MB/s or more "
            f"({zip_mb:.0f} MB in {SLOT_SECONDS - read:.1f} s)"
        )
    if connector:
        print("\nconnector read (bench (b)/(c): process start included, /dev/null)")
        for label, runs in connector.items():
            wall = median(r["wall"] for r in runs)
            best = min(r["wall"] for r in runs)
            print(
                f"  {label:<18} median wall {wall:.2f} s = {n / wall:,.0f} records/s "
                f"(best {best:.2f} s = {n / best:,.0f}/s); "
                f"median peak RSS {median(r['peak_rss_mb'] for r in runs):.0f} MB"
            )


if __name__ == "__main__":
    main()
