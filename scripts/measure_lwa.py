"""The LWA token refresh: the CDK's Oauth2Authenticator against the connector's LwaAuthenticator.

A small http.server on localhost plays Login with Amazon's token endpoint. Each authenticator
refreshes against it in a fresh child process (the CDK's refresh lock is class-wide, so a hung
refresh would block every later one in the same process), observed for at most --cap seconds:

  (i)   hang           the endpoint accepts the connection, reads the request, never answers;
                       meanwhile a second instance refreshes against a healthy endpoint (does
                       it get through, or does the class-wide lock hold it?)
  (ii)  500, 500, OK   attempts and total time (--repeat times: the CDK's backoff is jittered)
  (iii) invalid_grant  400 {"error": "invalid_grant"}: exception, failure type, the message a
                       user would see (a traced exception's message; for another exception the
                       CDK's generic one, or what HttpStream.get_error_display_message makes
                       of an HTTPError), and whether a field is named
  (iv)  200 OK         seconds per refresh (median of --refreshes), token registered as secret
  (v)   refused        nothing listens on the port

Authenticators:

  cdk          airbyte_cdk Oauth2Authenticator(endpoint, client id, secret, refresh token)
  cdk+errors   the same with the CDK's own refresh_token_error_status_codes=(400, 401),
               refresh_token_error_key="error", refresh_token_error_values=(invalid_grant,
               invalid_client, unauthorized_client)
  ours         LwaAuthenticator(parse_config(...)) as unit_tests/test_auth.py builds it
  ours(2s)     the same with SP_INVOICES_READ_TIMEOUT_SECONDS=2 (its documented override)

    .venv/bin/python scripts/measure_lwa.py [--cap 20] [--code-root DIR]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import socket
import socketserver
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
CLIENT_ID = "amzn1.application-oa2-client.measure"
CLIENT_SECRET = "measure-client-secret-0123"
REFRESH_TOKEN = "Atzr|measure-refresh-token-0123"
REJECTED_CODES = ("invalid_grant", "invalid_client", "unauthorized_client")


# --- the LWA stand-in ----------------------------------------------------------------------

COUNTS: dict[str, int] = {}
COUNTS_LOCK = threading.Lock()
NEVER = threading.Event()  # the hanging handler waits on it; never set


class _Lwa(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as LWA
    # Headers and body go out in two writes: without this, a reused connection waits on
    # Nagle + delayed ACK (40 ms) on loopback, which no real endpoint would show.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind, _, key = self.path.strip("/").partition("/")
        with COUNTS_LOCK:
            COUNTS[self.path] = COUNTS.get(self.path, 0) + 1
            count = COUNTS[self.path]
        if kind == "hang":
            NEVER.wait()
            return
        if kind == "flaky" and count <= 2:
            self._answer(500, {"error": "server_error", "error_description": "try again"})
        elif kind == "invalid_grant":
            self._answer(
                400,
                {
                    "error_description": "The request has an invalid grant parameter : "
                    "refresh_token",
                    "error": "invalid_grant",
                },
            )
        else:
            token = f"Atza|measure-{uuid.uuid4().hex}"
            self._answer(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a child that exits drops its kept-alive connection: not news


# --- the authenticators --------------------------------------------------------------------


def use_code_root() -> None:
    root = os.environ.get("SP_INVOICES_CODE_ROOT") or str(ROOT)
    if root not in sys.path[:1]:
        sys.path.insert(0, root)


def authenticator(kind: str, url: str) -> Any:
    if kind.startswith("cdk"):
        from airbyte_cdk.sources.streams.http.requests_native_auth import Oauth2Authenticator

        extra: dict[str, Any] = {}
        if kind == "cdk+errors":
            extra = {
                "refresh_token_error_status_codes": (400, 401),
                "refresh_token_error_key": "error",
                "refresh_token_error_values": REJECTED_CODES,
            }
        return Oauth2Authenticator(
            token_refresh_endpoint=url,
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            refresh_token=REFRESH_TOKEN,
            **extra,
        )
    use_code_root()
    import importlib

    root = Path(os.environ.get("SP_INVOICES_CODE_ROOT") or ROOT)
    # the module under the code root (the package is being reorganised)
    new_layout = (root / "source_sp_invoices/http/auth.py").exists()
    auth = importlib.import_module(
        "source_sp_invoices.http.auth" if new_layout else "source_sp_invoices.auth"
    )
    print(f"LwaAuthenticator from {auth.__file__}", file=sys.stderr)
    from source_sp_invoices.config import parse_config

    config = parse_config(
        {
            "lwa_app_id": CLIENT_ID,
            "lwa_client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
            "replication_start_date": "2024-01-01T00:00:00Z",
            "replication_end_date": "2024-01-15T00:00:00Z",
            "lwa_endpoint": url,
        }
    )
    return auth.LwaAuthenticator(config)


def describe(error: BaseException) -> dict[str, Any]:
    """What the platform would get from this exception."""
    import requests
    from airbyte_cdk.sources.streams.http import HttpStream
    from airbyte_cdk.utils.traced_exception import AirbyteTracedException

    traced = (
        error
        if isinstance(error, AirbyteTracedException)
        else AirbyteTracedException.from_exception(error)
    )
    trace = traced.as_airbyte_message().trace.error
    shown = trace.message
    if isinstance(error, requests.HTTPError) and error.response is not None:
        # what an HttpStream makes of an HTTPError in abstract_source (get_error_display_message)
        shown = HttpStream.parse_response_error_message(error.response) or shown
    names_field = any(
        f"`{field}`" in (shown or "")
        for field in ("refresh_token", "lwa_app_id", "lwa_client_secret", "lwa_endpoint")
    )
    return {
        "outcome": type(error).__name__,
        "failure_type": str(getattr(trace.failure_type, "value", trace.failure_type)),
        "message": shown,
        "internal": (trace.internal_message or "")[:160],
        "names_field": names_field,
    }


def child(kind: str, scenario: str, url: str, cap: float, extra_url: str) -> dict[str, Any]:
    """One authenticator, one scenario, observed for at most `cap` seconds."""
    import requests  # noqa: F401 - imported before the clock starts
    from airbyte_cdk.utils.airbyte_secrets_utils import filter_secrets

    auth = authenticator(kind, url)
    result: dict[str, Any] = {}

    if scenario == "ok":
        times = []
        tokens = []
        for _ in range(int(extra_url or 20)):
            started = time.perf_counter()
            token, _expiry = auth.refresh_access_token()
            times.append(time.perf_counter() - started)
            tokens.append(token)
        result = {
            "returned": True,
            "seconds": statistics.median(times),
            "first_seconds": times[0],
            "outcome": "token",
            "masked": all(filter_secrets(f"x {t} x") == "x **** x" for t in tokens),
        }
        return result

    done = threading.Event()

    def attempt() -> None:
        started = time.monotonic()
        try:
            auth.get_access_token()
            result.update(outcome="token")
        except BaseException as error:  # noqa: BLE001 - reported
            result.update(describe(error))
        result["seconds"] = time.monotonic() - started
        done.set()

    started = time.monotonic()
    threading.Thread(target=attempt, daemon=True).start()
    other: dict[str, Any] = {}
    if scenario == "hang" and extra_url:
        # a second instance (another stream) refreshing against a healthy endpoint meanwhile
        time.sleep(1.0)
        second = authenticator(kind, extra_url)
        other_done = threading.Event()

        def second_refresh() -> None:
            other_started = time.monotonic()
            try:
                second.get_access_token()
                other["outcome"] = "token"
            except BaseException as error:  # noqa: BLE001
                other["outcome"] = type(error).__name__
            other["seconds"] = time.monotonic() - other_started
            other_done.set()

        threading.Thread(target=second_refresh, daemon=True).start()
        other_done.wait(5.0)
        result["other_instance"] = (
            f"got a token in {other['seconds']:.2f} s"
            if other.get("outcome") == "token"
            else f"{other['outcome']} after {other['seconds']:.1f} s"
            if other
            else "blocked for 5 s (waits on the class-wide refresh lock)"
        )
    returned = done.wait(max(0.0, cap - (time.monotonic() - started)))
    result["returned"] = returned
    if not returned:
        result["seconds"] = time.monotonic() - started
        result["outcome"] = "still waiting"
    return result


# --- parent --------------------------------------------------------------------------------


def run_child(
    kind: str,
    scenario: str,
    url: str,
    cap: float,
    extra: str = "",
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    environment = dict(os.environ, **(env or {}))
    completed = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--child",
            kind,
            scenario,
            url,
            str(cap),
            extra,
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=cap + 60,
    )
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"{kind} {scenario} failed: {completed.stderr[-2000:]}")
    return json.loads(lines[-1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cap", type=float, default=20.0, help="seconds a call is observed")
    parser.add_argument("--repeat", type=int, default=3, help="runs of (ii)")
    parser.add_argument("--refreshes", type=int, default=20, help="refreshes timed in (iv)")
    parser.add_argument("--code-root", help="directory holding the source_sp_invoices to measure")
    parser.add_argument(
        "--only", action="append", choices=["hang", "flaky", "invalid_grant", "ok", "refused"]
    )
    parser.add_argument(
        "--kinds", default="cdk,cdk+errors,ours,ours(2s)", help="authenticators, comma-separated"
    )
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.code_root:
        os.environ["SP_INVOICES_CODE_ROOT"] = str(Path(args.code_root).resolve())
    if args.child:
        kind, scenario, url, cap, extra = args.child
        result = child(kind, scenario, url, float(cap), extra)
        print(json.dumps(result), flush=True)
        os._exit(0)  # a hung refresh thread must not keep the child alive

    from importlib.metadata import version

    print(
        f"airbyte-cdk {version('airbyte-cdk')}, requests {version('requests')}, backoff "
        f"{version('backoff')}; code measured: {os.environ.get('SP_INVOICES_CODE_ROOT') or ROOT}"
    )
    server = _Server(("localhost", 0), _Lwa)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://localhost:{server.server_address[1]}"
    kinds = args.kinds.split(",")
    scenarios = args.only or ["hang", "flaky", "invalid_grant", "ok", "refused"]
    rows: list[tuple[str, str, str, str, str]] = []

    def env_of(kind: str) -> dict[str, str]:
        return {"SP_INVOICES_READ_TIMEOUT_SECONDS": "2"} if kind == "ours(2s)" else {}

    def child_kind(kind: str) -> str:
        return "ours" if kind.startswith("ours") else kind

    def attempts(path: str) -> int:
        with COUNTS_LOCK:
            return COUNTS.get(path, 0)

    for scenario in scenarios:
        for kind in kinds:
            if kind == "ours(2s)" and scenario not in ("hang",):
                continue  # the read timeout only matters when the endpoint does not answer
            if scenario == "hang":
                path = f"/hang/{uuid.uuid4().hex}"
                r = run_child(
                    child_kind(kind),
                    "hang",
                    base + path,
                    args.cap,
                    f"{base}/ok/{uuid.uuid4().hex}",
                    env_of(kind),
                )
                returned = (
                    f"returned after {r['seconds']:.1f} s"
                    if r["returned"]
                    else f"NOT returned after {r['seconds']:.1f} s"
                )
                detail = f"{r['outcome']}"
                if r.get("failure_type"):
                    detail += f" ({r['failure_type']}): {r.get('message')}"
                rows.append(
                    (
                        "(i) hang",
                        kind,
                        returned,
                        f"{attempts(path)} request(s)",
                        f"{detail}; 2nd instance meanwhile: {r.get('other_instance')}",
                    )
                )
            elif scenario == "flaky":
                runs = []
                for _ in range(args.repeat):
                    path = f"/flaky/{uuid.uuid4().hex}"
                    r = run_child(
                        child_kind(kind), "flaky", base + path, args.cap, "", env_of(kind)
                    )
                    runs.append((r, attempts(path)))
                rows.append(
                    (
                        "(ii) 500,500,OK",
                        kind,
                        "seconds " + ", ".join(f"{r['seconds']:.2f}" for r, _ in runs),
                        "attempts " + ", ".join(str(n) for _, n in runs),
                        ", ".join(sorted({r["outcome"] for r, _ in runs})),
                    )
                )
            elif scenario == "invalid_grant":
                path = f"/invalid_grant/{uuid.uuid4().hex}"
                r = run_child(
                    child_kind(kind), "invalid_grant", base + path, args.cap, "", env_of(kind)
                )
                rows.append(
                    (
                        "(iii) invalid_grant",
                        kind,
                        f"{r['seconds']:.2f} s",
                        f"{attempts(path)} request(s)",
                        f"{r['outcome']} / {r.get('failure_type')} / names a field: "
                        f"{r.get('names_field')} / shown: {r.get('message')!r}",
                    )
                )
            elif scenario == "ok":
                path = f"/ok/{uuid.uuid4().hex}"
                r = run_child(
                    child_kind(kind), "ok", base + path, args.cap, str(args.refreshes), env_of(kind)
                )
                rows.append(
                    (
                        "(iv) 200 OK",
                        kind,
                        f"{r['seconds'] * 1000:.2f} ms/refresh "
                        f"(first {r['first_seconds'] * 1000:.1f} ms)",
                        f"{attempts(path)} request(s)",
                        f"token registered as a secret: {r['masked']}",
                    )
                )
            elif scenario == "refused":
                url = f"http://localhost:{free_port()}/token"
                r = run_child(child_kind(kind), "refused", url, args.cap, "", env_of(kind))
                returned = (
                    f"returned after {r['seconds']:.1f} s"
                    if r["returned"]
                    else f"NOT returned after {r['seconds']:.1f} s"
                )
                detail = r["outcome"]
                if r.get("failure_type"):
                    detail += f" ({r['failure_type']}): {r.get('message')}"
                rows.append(("(v) refused", kind, returned, "-", detail))
    server.shutdown()

    print(f"\nobserved for at most {args.cap:g} s per call")
    print(f"{'scenario':<20} {'authenticator':<11} {'time':<42} {'requests':<14} result")
    for scenario, kind, time_text, count, result in rows:
        print(f"{scenario:<20} {kind:<11} {time_text:<42} {count:<14} {result}")


if __name__ == "__main__":
    main()
