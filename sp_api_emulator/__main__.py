"""Command line: `python -m sp_api_emulator --seed 42 --days 30 --ready-file /tmp/emu.url`.

`--reading NAME=VALUE` (repeatable) picks a reading of the model, e.g.
`--reading pagination=same_arguments --reading rate_limit_header=false` (see README.md).

Serves until SIGINT or SIGTERM. The ready file receives the URL once the port is bound, so
scripts and Makefiles can wait for it; it is removed again on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from types import FrameType

from .dataset import Dataset
from .generator import DayCount, day_profile
from .parsing import parse_datetime
from .readings import Readings, help_text
from .server import EmulatorServer, require_loopback


def _day_count(text: str) -> DayCount:
    """Parse --invoices-per-day: "N", "LO-HI" or "profile" (quiet and busy days mixed)."""
    if text == "profile":
        return day_profile()
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N, LO-HI or 'profile', got {text!r}") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"need 0 <= LO <= HI, got {text!r}")
    return bounds


def _loopback(host: str) -> str:
    """Accept only loopback hosts."""
    try:
        require_loopback(host)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return host


def _count(text: str) -> int:
    """Parse a non-negative integer."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _seconds_range(text: str) -> tuple[float, float]:
    """Parse --export-processing-seconds: "S" or "LO-HI" emulator seconds."""
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected S or LO-HI seconds, got {text!r}") from None
    if not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"need 0 <= LO <= HI, got {text!r}")
    return bounds


def _instant(text: str) -> datetime:
    """Parse an ISO 8601 date-time (UTC when no offset is given)."""
    try:
        return parse_datetime(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _at_least_one(text: str) -> int:
    """Parse a positive integer."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _non_negative(text: str) -> float:
    """Parse a number of seconds that may be zero."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text!r}")
    return value


def _positive(text: str) -> float:
    """Parse a positive number."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _xml_dir(text: str) -> list[Path]:
    """Parse --xml-dir: the *.xml files under a directory, sorted by their relative path."""
    directory = Path(text)
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"not a directory: {text!r}")
    files = sorted(
        (path for path in directory.rglob("*") if path.suffix.lower() == ".xml"),
        key=lambda path: path.relative_to(directory).as_posix(),
    )
    if not files:
        raise argparse.ArgumentTypeError(f"no .xml file under {text!r}")
    return files


def _reading(text: str) -> str:
    """Check one --reading NAME=VALUE on its own, so a bad one fails with a clear message."""
    try:
        Readings.parse([text])
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m sp_api_emulator",
        description="Local emulator of the Amazon SP-API Invoices API (v2024-06-19) and LWA.",
    )
    parser.add_argument("--host", type=_loopback, default="127.0.0.1", help="loopback address")
    parser.add_argument("--port", type=int, default=0, help="TCP port (0 = any free port)")
    parser.add_argument("--seed", type=int, default=42, help="data set seed")
    parser.add_argument(
        "--start", type=date.fromisoformat, default=date(2024, 1, 1), help="first day, YYYY-MM-DD"
    )
    parser.add_argument("--days", type=_count, default=30, help="number of days of invoices")
    parser.add_argument(
        "--invoices-per-day",
        type=_day_count,
        default=(0, 40),
        metavar="LO-HI",
        help="invoices per day: N, LO-HI (default 0-40) or 'profile' (quiet and busy days)",
    )
    parser.add_argument(
        "--time-scale", type=_positive, default=1.0, help="emulator seconds per real second"
    )
    parser.add_argument(
        "--token-ttl", type=_positive, default=3600.0, help="access token life, emulator seconds"
    )
    parser.add_argument(
        "--max-invoices-per-document",
        type=_at_least_one,
        default=1000,
        metavar="N",
        help="most invoices in one export document (ZIP), default 1000",
    )
    parser.add_argument(
        "--max-export-days",
        type=_at_least_one,
        default=None,
        metavar="N",
        help="longest date range createInvoicesExport accepts (a 400 beyond), default no limit",
    )
    parser.add_argument(
        "--export-processing-seconds",
        type=_seconds_range,
        default=(60.0, 120.0),
        metavar="LO-HI",
        help="emulator seconds an export spends PROCESSING (default 60-120; more invoices, longer)",
    )
    parser.add_argument(
        "--export-queue-seconds",
        type=_non_negative,
        default=5.0,
        metavar="S",
        help="emulator seconds an export stays REQUESTED (default 5)",
    )
    parser.add_argument(
        "--encoding-mix",
        action="store_true",
        help="render some NF-e files in ISO-8859-1 or with a UTF-8 BOM (default: all UTF-8)",
    )
    parser.add_argument(
        "--xml-dir",
        type=_xml_dir,
        metavar="DIR",
        help="serve the *.xml files under DIR (subfolders too, sorted by path), byte for byte, "
        "as the export files of the first invoices in (date, id) order (see README.md)",
    )
    parser.add_argument(
        "--epoch",
        type=_instant,
        help="emulator wall clock at start, ISO 8601 (default: now)",
    )
    parser.add_argument(
        "--scaled-wall-clock",
        action="store_true",
        help="run the wall clock (export timestamps, URL dates) at --time-scale, not real speed",
    )
    parser.add_argument(
        "--reading",
        dest="readings",
        type=_reading,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="serve one reading of the model where it contradicts itself (repeatable; the "
        f"first value is the default): {help_text()}",
    )
    parser.add_argument("--ready-file", type=Path, help="write the URL here once listening")
    parser.add_argument("--log-requests", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)
    args.readings = Readings.parse(args.readings)
    return args


def _write_ready_file(path: Path, url: str) -> None:
    """Write the URL atomically, so a watcher never reads half a line."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(url + "\n", encoding="utf-8")
    temporary.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Generate the data set, serve it, and stop cleanly on SIGINT/SIGTERM."""
    args = parse_args(argv)
    dataset = Dataset.generate(args.seed, args.start, args.days, args.invoices_per_day)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    server = EmulatorServer(
        dataset,
        time_scale=args.time_scale,
        host=args.host,
        port=args.port,
        token_ttl=args.token_ttl,
        log_requests=args.log_requests,
        epoch=args.epoch,
        scaled_wall_clock=args.scaled_wall_clock,
        max_invoices_per_document=args.max_invoices_per_document,
        max_export_days=args.max_export_days,
        export_processing_seconds=args.export_processing_seconds,
        export_queue_seconds=args.export_queue_seconds,
        encoding_mix=args.encoding_mix,
        readings=args.readings,
    )
    if args.xml_dir:
        try:
            server.serve_xml(path.read_bytes() for path in args.xml_dir)
        except ValueError as error:
            print(f"--xml-dir: {error}; add --days or --invoices-per-day", file=sys.stderr)
            return 2
    defaults = Readings().to_json()
    with server:
        print(
            f"SP-API emulator listening on {server.url} "
            f"({len(dataset)} invoices, time scale {args.time_scale:g})",
            flush=True,
        )
        if server.xml_files:
            print(f"serving {len(server.xml_files)} given XML files (--xml-dir)", flush=True)
        chosen = {k: v for k, v in args.readings.to_json().items() if v != defaults[k]}
        if chosen:
            shown = (
                f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in chosen.items()
            )
            print("readings: " + ", ".join(shown), flush=True)
        if args.ready_file:
            _write_ready_file(args.ready_file, server.url)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            if args.ready_file:
                args.ready_file.unlink(missing_ok=True)
    print("SP-API emulator stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
