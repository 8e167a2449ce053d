"""SP-API usage plans and the token buckets that enforce them.

One bucket per operation, starting full (`burst` tokens) and refilled at `rate` tokens per
emulator second, i.e. `rate * time_scale` per real second. `x-amzn-RateLimit-Limit` reports that
effective rate, the one a client actually experiences.

A call is judged when it arrives, a client paces when it sends: between the two lie a few
milliseconds of real scheduling (a GIL switch is 5 ms) that the time scale multiplies (5 ms is
0.3 emulator seconds at 60x, 5 % of createInvoicesExport's interval) but that Amazon, at 1x, never
sees. So a call may arrive `arrival_grace` real seconds early (at most `MAX_GRACE_TOKENS` of a
token): jitter is absorbed, a client that keeps calling faster than the plan still meets 429s.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from .clock import ScaledClock

API_PREFIX = "/tax/invoices/2024-06-19"
DEFAULT_ARRIVAL_GRACE = 0.02  # real seconds a call may arrive before its token is whole
MAX_GRACE_TOKENS = 0.25  # the grace never lends more than this share of one token


@dataclass(frozen=True)
class UsagePlan:
    """An operation's route (under API_PREFIX) and its default rate (req/s) and burst."""

    operation: str
    method: str
    path: str
    rate: Decimal
    burst: int


USAGE_PLANS: dict[str, UsagePlan] = {
    plan.operation: plan
    for plan in (
        UsagePlan("getInvoicesAttributes", "GET", "/attributes", Decimal(1), 1),
        UsagePlan("getInvoices", "GET", "/invoices", Decimal("0.1"), 20),
        UsagePlan("getInvoice", "GET", "/invoices/{invoiceId}", Decimal(2), 15),
        UsagePlan("createInvoicesExport", "POST", "/exports", Decimal("0.167"), 1),
        UsagePlan("getInvoicesExports", "GET", "/exports", Decimal("0.1"), 20),
        UsagePlan("getInvoicesExport", "GET", "/exports/{exportId}", Decimal(2), 15),
        UsagePlan(
            "getInvoicesDocument", "GET", "/documents/{invoicesDocumentId}", Decimal("0.0167"), 1
        ),
    )
}


def format_rate(rate: Decimal) -> str:
    """Render a rate as a plain decimal string: 6 -> "6.0", 0.0167 -> "0.0167"."""
    text = format(rate.normalize(), "f")
    return text if "." in text else f"{text}.0"


class TokenBucket:
    """A token bucket driven by explicit timestamps (no clock inside: easy to test)."""

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        """Start full at time `now`; `rate` is tokens per second of the caller's clock."""
        self.rate = rate
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self._updated = now

    def refill(self, now: float) -> None:
        """Add the tokens earned since the last update, up to the capacity."""
        elapsed = max(0.0, now - self._updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self._updated = now

    def try_acquire(self, now: float, grace: float = 0.0) -> bool:
        """Take one token if there is one (or all but `grace` of one); tell whether to proceed."""
        self.refill(now)
        if self.tokens >= 1.0 - grace:
            self.tokens -= 1.0
            return True
        return False

    def seconds_until_available(self, now: float) -> float:
        """Return how long until one token is available (0 when one is)."""
        self.refill(now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate


class RateLimiter:
    """Token buckets for every operation of the usage-plan table, on an emulator clock."""

    def __init__(
        self,
        clock: ScaledClock | None = None,
        overrides: Mapping[str, float] | None = None,
        plans: Mapping[str, UsagePlan] = USAGE_PLANS,
        arrival_grace: float = DEFAULT_ARRIVAL_GRACE,
    ) -> None:
        """Create full buckets; `overrides` maps operation -> rate (a higher usage plan).

        arrival_grace: real seconds a call may arrive early (see the module docstring); 0 judges
        arrivals exactly.
        """
        if arrival_grace < 0:
            raise ValueError("arrival_grace cannot be negative")
        self.clock = clock or ScaledClock()
        self.arrival_grace = arrival_grace
        self._plans = dict(plans)
        self._overrides: dict[str, Decimal] = {}
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}
        for operation, rate in (overrides or {}).items():
            self._check(operation)
            self._overrides[operation] = Decimal(str(rate))
        self.reset()

    def _check(self, operation: str) -> UsagePlan:
        """Return an operation's plan; a typo fails loudly."""
        try:
            return self._plans[operation]
        except KeyError:
            raise ValueError(f"unknown operation {operation!r}") from None

    def rate(self, operation: str) -> Decimal:
        """Return the operation's rate in requests per emulator second."""
        return self._overrides.get(operation, self._check(operation).rate)

    def effective_rate(self, operation: str) -> Decimal:
        """Return the rate a client sees, in requests per real second."""
        return self.rate(operation) * Decimal(str(self.clock.time_scale))

    def header(self, operation: str) -> str:
        """Return the `x-amzn-RateLimit-Limit` value for an operation."""
        return format_rate(self.effective_rate(operation))

    @property
    def overrides(self) -> dict[str, float]:
        """Return the rate overrides in force."""
        return {op: float(rate) for op, rate in self._overrides.items()}

    def set_rate(self, operation: str, rate: float | None) -> None:
        """Override an operation's rate (None restores the default); tokens held are kept."""
        self._check(operation)
        with self._lock:
            if rate is None:
                self._overrides.pop(operation, None)
            else:
                if rate <= 0:
                    raise ValueError("a rate must be positive")
                self._overrides[operation] = Decimal(str(rate))
            bucket = self._buckets[operation]
            bucket.refill(self.clock())  # tokens earned so far count at the old rate
            bucket.rate = float(self.rate(operation))

    def acquire(self, operation: str) -> bool:
        """Take a token for one call; False means the call is throttled (429)."""
        grace = min(MAX_GRACE_TOKENS, self.arrival_grace * float(self.effective_rate(operation)))
        with self._lock:
            return self._buckets[operation].try_acquire(self.clock(), grace)

    def tokens(self, operation: str) -> float:
        """Return how many tokens an operation's bucket holds now."""
        with self._lock:
            bucket = self._buckets[operation]
            bucket.refill(self.clock())
            return bucket.tokens

    def reset(self) -> None:
        """Refill every bucket to its burst."""
        with self._lock:
            now = self.clock()
            self._buckets = {
                op: TokenBucket(float(self.rate(op)), plan.burst, now)
                for op, plan in self._plans.items()
            }
