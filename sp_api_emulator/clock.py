"""Emulator time: a real clock sped up by `time_scale`, or a manual clock for tests.

Token lifetimes, rate-limit refills, export processing and URL expiry run in emulator seconds, so
a test can make an hour-long token or a one-call-per-minute operation pass in a fraction of a real
second. `WallClock` gives those emulator seconds a UTC date, for the timestamps the API shows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class ScaledClock:
    """Emulator seconds = real seconds from `source` multiplied by `time_scale`."""

    def __init__(
        self, time_scale: float = 1.0, source: Callable[[], float] = time.monotonic
    ) -> None:
        """Scale a real clock (any callable returning seconds; injectable for tests)."""
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self._source = source

    def __call__(self) -> float:
        """Return the current emulator time in seconds (arbitrary origin)."""
        return self._source() * self.time_scale

    def to_real(self, emulator_seconds: float) -> float:
        """Convert a duration in emulator seconds to real seconds."""
        return emulator_seconds / self.time_scale


class ManualClock:
    """A clock that only moves when told: inject it as a `source` so tests never sleep."""

    def __init__(self, start: float = 0.0) -> None:
        """Start at `start` seconds."""
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current time in seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += seconds


class WallClock:
    """Gives emulator instants a UTC date: `epoch` is the wall time at emulator time `origin`.

    By default the wall clock runs at real speed (emulator seconds / time_scale), so the dates
    the API shows agree with a client's own clock: a connector that asks for exports created
    until "now" sees them all. `scaled=True` runs it at emulator speed instead (timestamps then
    show emulator durations, e.g. 60-120 s of export processing, but race ahead of real time).
    Either way a ManualClock drives it deterministically.
    """

    def __init__(
        self,
        clock: ScaledClock,
        epoch: datetime,
        *,
        scaled: bool = False,
        origin: float | None = None,
    ) -> None:
        """Anchor the clock's current time (or `origin`, emulator seconds) at `epoch`."""
        if epoch.tzinfo is None:
            raise ValueError("the epoch must be timezone-aware")
        self.clock = clock
        self.epoch = epoch.astimezone(UTC)
        self.scaled = scaled
        self.origin = clock() if origin is None else origin
        self._speed = 1.0 if scaled else 1.0 / clock.time_scale

    def at(self, emulator_seconds: float) -> datetime:
        """Return the wall time of an emulator instant."""
        return self.epoch + timedelta(seconds=(emulator_seconds - self.origin) * self._speed)

    def now(self) -> datetime:
        """Return the current wall time."""
        return self.at(self.clock())
