"""The time the emulators read: the real one by default, one a test moves by hand.

Whatever changes with time (token expiry, orders moving on, rate-limit windows, scheduled
sends, idempotency lifetimes) reads a `Clock`, so a test advances a `ManualClock` instead
of sleeping past a margin. Tests with real worker processes keep the real clock: there the
emulators must move on by themselves.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Real time."""

    def now(self) -> datetime:
        """The current time, an aware UTC datetime."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back: for durations."""
        return time.monotonic()


class ManualClock(Clock):
    """Stands still until `advance()`. It starts at the real time of its creation, so dates
    in requests (a send scheduled an hour ahead) compare as they would in real time."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime.now(UTC)
        self._elapsed = 0.0
        self._lock = threading.Lock()  # a loopback server reads it from its own threads

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        with self._lock:
            return self._elapsed

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("A clock only goes forward")
        with self._lock:
            self._elapsed += seconds
