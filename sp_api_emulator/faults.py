"""Fault injection: switches that make the emulator misbehave on purpose.

Tests flip them from Python (`server.faults`) or over HTTP (`POST /_emulator/control`) to drive
a connector through the failures it must survive. New fault kinds belong here, as data the
server consults on each request.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import date
from typing import Any

ANY_OPERATION = "*"
LWA_OPERATION = "lwaToken"
DOWNLOAD_OPERATION = "download"  # the pre-signed ZIP download (not an SP-API operation)
DEFAULT_EXPORT_ERROR = "Export generation failed: internal error"
TRUNCATE, DROP = "truncate", "drop"  # what a download fault does to the body
GARBLE, CUT = "garble", "cut"  # what a body fault does to an SP-API answer
COUNTED_SWITCHES = ("truncate_downloads", "drop_downloads", "expire_urls")

# Default (code, message) of SP-API error bodies by HTTP status.
ERROR_CODES: dict[int, tuple[str, str]] = {
    400: ("InvalidInput", "One or more request parameters is invalid."),
    403: ("Unauthorized", "Access to requested resource is denied."),
    404: ("NotFound", "The resource specified does not exist."),
    413: ("RequestEntityTooLarge", "The request size exceeded the maximum accepted size."),
    415: ("UnsupportedMediaType", "The request payload is in an unsupported format."),
    429: ("QuotaExceeded", "You exceeded your quota for the requested resource."),
    500: ("InternalFailure", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Service temporarily unavailable. Please try again."),
}


@dataclass(frozen=True)
class InjectedFailure:
    """One planned error answer."""

    status: int
    code: str
    message: str
    details: str = ""


FAIL, CANCEL, ODD = "fail_exports", "cancel_exports", "odd_status"  # kinds of export plans


@dataclass
class ExportFailure:
    """Exports planned to end otherwise than DONE: how many more, for which dateStart, and how.

    `kind` FAIL ends them in ERROR with `message`; CANCEL ends them CANCELLED (ERROR saying so
    under the export_statuses="model" reading); ODD makes them answer `status` for ever.
    """

    count: int
    message: str
    date_start: date | None = None
    kind: str = FAIL
    status: str = ""

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON (the shape of its control key)."""
        start = self.date_start.isoformat() if self.date_start else None
        if self.kind == CANCEL:
            return {"count": self.count, "dateStart": start}
        if self.kind == ODD:
            return {"status": self.status, "count": self.count, "dateStart": start}
        return {"count": self.count, "message": self.message, "dateStart": start}


class Faults:
    """The fault switches of one server (thread-safe).

    - `deny_role`: every SP-API call answers 403 Unauthorized (the app lacks the role).
    - `fail_next(operation, status, count)`: the next `count` calls of an operation fail.
    - `latency[operation]`: seconds of real delay before answering ("*" = every operation).
    - `fail_exports(count)`: the next created exports end in ERROR instead of DONE.
    - `cancel_exports(count)`: the next created exports end CANCELLED (export_statuses="reports";
      under "model" they end ERROR with a message saying they were cancelled).
    - `odd_status(status, count)`: the next created exports answer `status` (e.g. "PAUSED")
      for ever, with no documents: a status no reading of the model knows.
    - `truncate_downloads(count)` / `drop_downloads(count)`: the next downloads send half the
      ZIP, announced as such (a corrupt ZIP) or announced whole (the connection drops mid-body).
    - `expire_urls(count)`: the next document URLs are issued already expired.
    - `forget_exports(ids)`: getInvoicesExport(s) no longer know these exports.
    - `garble_next(operation, count)`: the next answers are 200 with an HTML page, not JSON.
    - `cut_next(operation, count)`: the next answers close the connection halfway through a
      body whose Content-Length announced it whole.
    """

    def __init__(self, operations: Iterable[str]) -> None:
        """Accept switches for these operation names (plus "lwaToken", "download" and "*")."""
        self.operations = frozenset(operations) | {
            LWA_OPERATION,
            DOWNLOAD_OPERATION,
            ANY_OPERATION,
        }
        self.deny_role = False
        self.latency: dict[str, float] = {}
        self._pending: dict[str, deque[InjectedFailure]] = {}
        self._export_failures: list[ExportFailure] = []
        self._counted: Counter[str] = Counter()
        self._forgotten: set[str] = set()
        self._body_faults: dict[str, deque[str]] = {}
        self._lock = threading.Lock()

    def _check(self, operation: str) -> None:
        """Refuse unknown operation names, so a typo cannot silently disable a fault."""
        if operation not in self.operations:
            known = ", ".join(sorted(self.operations))
            raise ValueError(f"unknown operation {operation!r} (known: {known})")

    def fail_next(
        self,
        operation: str,
        status: int,
        count: int = 1,
        *,
        code: str | None = None,
        message: str | None = None,
        details: str = "",
    ) -> None:
        """Answer the next `count` calls of `operation` ("*" = any) with an error status."""
        self._check(operation)
        if not 400 <= status <= 599:
            raise ValueError(f"status must be 4xx or 5xx, got {status}")
        if count < 1:
            raise ValueError("count must be at least 1")
        default_code, default_message = ERROR_CODES.get(status, ("InternalFailure", "Error."))
        failure = InjectedFailure(status, code or default_code, message or default_message, details)
        with self._lock:
            self._pending.setdefault(operation, deque()).extend([failure] * count)

    def take_failure(self, operation: str) -> InjectedFailure | None:
        """Consume the failure planned for this call, if any (own queue first, then "*")."""
        with self._lock:
            for name in (operation, ANY_OPERATION):
                queue = self._pending.get(name)
                if queue:
                    return queue.popleft()
        return None

    def set_latency(self, operation: str, seconds: float | None) -> None:
        """Delay every answer of an operation; None or 0 removes the delay."""
        self._check(operation)
        if not seconds:
            self.latency.pop(operation, None)
        elif seconds < 0:
            raise ValueError("latency must not be negative")
        else:
            self.latency[operation] = float(seconds)

    def delay(self, operation: str) -> float:
        """Return the real seconds to wait before answering an operation."""
        return self.latency.get(operation, self.latency.get(ANY_OPERATION, 0.0))

    # --- exports and downloads ---------------------------------------------------------------

    def fail_exports(
        self,
        count: int = 1,
        *,
        message: str = DEFAULT_EXPORT_ERROR,
        date_start: date | str | None = None,
    ) -> None:
        """Make the next `count` created exports (only those of `date_start`, if given) end in
        ERROR with `message`."""
        self._plan_exports(ExportFailure(count, message, _day(date_start)))

    def cancel_exports(self, count: int = 1, date_start: date | str | None = None) -> None:
        """Make the next `count` created exports (only those of `date_start`, if given) end
        CANCELLED (under export_statuses="model": ERROR, with a message saying so)."""
        self._plan_exports(ExportFailure(count, "", _day(date_start), CANCEL))

    def odd_status(self, status: str, count: int = 1, date_start: date | str | None = None) -> None:
        """Make the next `count` created exports (only those of `date_start`, if given) answer
        `status` (e.g. "PAUSED") for ever instead of their life cycle, with no documents."""
        if not isinstance(status, str) or not status:
            raise ValueError("status must be a non-empty string")
        self._plan_exports(ExportFailure(count, "", _day(date_start), ODD, status))

    def _plan_exports(self, plan: ExportFailure) -> None:
        """Queue a plan for the next created exports."""
        if plan.count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._export_failures.append(plan)

    def take_export_fault(self, date_start: date) -> ExportFailure | None:
        """Consume the first plan (of any kind, in the order planned) matching an export of
        `date_start`; return a copy of it with count 1, or None."""
        with self._lock:
            for plan in self._export_failures:
                if plan.date_start is None or plan.date_start == date_start:
                    plan.count -= 1
                    if plan.count == 0:
                        self._export_failures.remove(plan)
                    return replace(plan, count=1)
        return None

    def take_export_failure(self, date_start: date) -> str | None:
        """Consume the failure planned for an export of `date_start`; return its message.

        Only fail_exports plans are consumed (the other kinds wait for `take_export_fault`).
        """
        with self._lock:
            for plan in self._export_failures:
                if plan.kind == FAIL and plan.date_start in (None, date_start):
                    plan.count -= 1
                    if plan.count == 0:
                        self._export_failures.remove(plan)
                    return plan.message
        return None

    def _count(self, switch: str, count: int) -> None:
        """Add `count` uses to a counted switch."""
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._counted[switch] += count

    def truncate_downloads(self, count: int = 1) -> None:
        """Send only half of the next `count` ZIPs, with a Content-Length saying so."""
        self._count("truncate_downloads", count)

    def drop_downloads(self, count: int = 1) -> None:
        """Close the connection halfway through the next `count` ZIPs (full Content-Length)."""
        self._count("drop_downloads", count)

    def expire_urls(self, count: int = 1) -> None:
        """Issue the next `count` document URLs already expired."""
        self._count("expire_urls", count)

    def take(self, switch: str) -> bool:
        """Consume one use of a counted switch ("expire_urls"...); tell whether it was on."""
        with self._lock:
            if self._counted[switch] > 0:
                self._counted[switch] -= 1
                return True
        return False

    def take_download_fault(self) -> str | None:
        """Consume the fault planned for this download: TRUNCATE, DROP or None."""
        if self.take("truncate_downloads"):
            return TRUNCATE
        if self.take("drop_downloads"):
            return DROP
        return None

    def garble_next(self, operation: str, count: int = 1) -> None:
        """Answer the next `count` successful calls of `operation` with 200 and an HTML page."""
        self._plan_body_fault(operation, GARBLE, count)

    def cut_next(self, operation: str, count: int = 1) -> None:
        """Drop the connection halfway through the next `count` answers of `operation`."""
        self._plan_body_fault(operation, CUT, count)

    def _plan_body_fault(self, operation: str, kind: str, count: int) -> None:
        self._check(operation)
        if count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._body_faults.setdefault(operation, deque()).extend([kind] * count)

    def take_body_fault(self, operation: str) -> str | None:
        """Consume the body fault planned for this answer: GARBLE, CUT or None."""
        with self._lock:
            for name in (operation, ANY_OPERATION):
                queue = self._body_faults.get(name)
                if queue:
                    return queue.popleft()
        return None

    def forget_exports(self, export_ids: Iterable[str]) -> None:
        """Make getInvoicesExport answer 404 for these exports (and listings leave them out)."""
        with self._lock:
            self._forgotten.update(export_ids)

    def is_forgotten(self, export_id: str) -> bool:
        """Tell whether an export is forgotten."""
        with self._lock:
            return export_id in self._forgotten

    # --- all switches -------------------------------------------------------------------------

    def reset(self) -> None:
        """Turn every fault off."""
        with self._lock:
            self.deny_role = False
            self.latency.clear()
            self._pending.clear()
            self._export_failures.clear()
            self._counted.clear()
            self._forgotten.clear()

    def snapshot(self) -> dict[str, Any]:
        """Return the switches as JSON-ready data."""
        with self._lock:
            pending = {
                op: [asdict(f) for f in queue] for op, queue in self._pending.items() if queue
            }
            return {
                "deny_role": self.deny_role,
                "latency": dict(self.latency),
                "fail_next": pending,
                **{
                    kind: [plan.to_json() for plan in self._export_failures if plan.kind == kind]
                    for kind in (FAIL, CANCEL, ODD)
                },
                **{switch: self._counted[switch] for switch in COUNTED_SWITCHES},
                "forget_exports": sorted(self._forgotten),
            }


def _day(value: date | str | None) -> date | None:
    """Accept a date, YYYY-MM-DD text or None."""
    return date.fromisoformat(value) if isinstance(value, str) else value
