"""Time, behind a port so tests can move it (reservation expiry, UTC days, NIP-98 windows)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


class FixedClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self, start: float = 1_790_000_000.0):
        self.current = start

    def now(self) -> float:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += seconds


def utc_day(epoch_seconds: float) -> str:
    """The UTC day of an instant, as YYYY-MM-DD."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%d")


def iso(epoch_seconds: float) -> str:
    """An instant as an ISO-8601 UTC string with milliseconds (sortable)."""
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
