"""Request statistics: what the connector under test actually asked for, and what it got.

Tests assert on them ("no more than N getInvoices calls", "one 429 was retried") either in
Python (`server.stats`) or over HTTP (`GET /_emulator/stats`, `GET /_emulator/requests`).
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

MAX_LOGGED_REQUESTS = 10_000


@dataclass(frozen=True)
class RequestRecord:
    """One answered request (no secrets: tokens and bodies are not kept)."""

    operation: str
    method: str
    path: str
    query: dict[str, list[str]]
    status: int
    token: int | None = None  # the issue number of the access token sent (not the token)


class Stats:
    """Counts per operation and status, plus a bounded log of recent requests (thread-safe)."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._recorded = threading.Condition(self._lock)
        self._counts: Counter[tuple[str, int]] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=MAX_LOGGED_REQUESTS)

    def record(self, record: RequestRecord) -> None:
        """Count one answered request."""
        with self._lock:
            self._counts[(record.operation, record.status)] += 1
            self._log.append(record)
            self._recorded.notify_all()

    def count(self, operation: str | None = None, status: int | None = None) -> int:
        """Return how many requests matched an operation and/or status (None = any)."""
        with self._lock:
            return self._count(operation, status)

    def _count(self, operation: str | None, status: int | None) -> int:
        return sum(
            n
            for (op, st), n in self._counts.items()
            if (operation is None or op == operation) and (status is None or st == status)
        )

    def wait(
        self,
        operation: str | None = None,
        status: int | None = None,
        count: int = 1,
        timeout: float | None = None,
    ) -> bool:
        """Block until `count` requests matching an operation and/or status were answered;
        return False if `timeout` real seconds passed first (an event for tests: no polling)."""
        with self._recorded:
            return self._recorded.wait_for(
                lambda: self._count(operation, status) >= count, timeout=timeout
            )

    def requests(self, operation: str | None = None) -> list[RequestRecord]:
        """Return the logged requests, oldest first, optionally of one operation."""
        with self._lock:
            return [r for r in self._log if operation is None or r.operation == operation]

    def snapshot(self) -> dict[str, Any]:
        """Return the counts as JSON: totals per operation and per status."""
        with self._lock:
            operations: dict[str, dict[str, Any]] = {}
            statuses: Counter[str] = Counter()
            for (op, status), n in sorted(self._counts.items()):
                entry = operations.setdefault(op, {"total": 0, "statuses": {}})
                entry["total"] += n
                entry["statuses"][str(status)] = n
                statuses[str(status)] += n
            return {
                "total": sum(statuses.values()),
                "operations": operations,
                "statuses": dict(sorted(statuses.items())),
            }

    def log_snapshot(self, operation: str | None = None) -> list[dict[str, Any]]:
        """Return the request log as JSON."""
        return [asdict(r) for r in self.requests(operation)]

    def reset(self) -> None:
        """Forget every count and logged request."""
        with self._lock:
            self._counts.clear()
            self._log.clear()
