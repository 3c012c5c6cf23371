"""The clocks (the port is `timmy.ports.clock.Clock`), and UTC day and ISO helpers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from timmy.ports.clock import Clock

__all__ = ["Clock", "FixedClock", "SystemClock", "iso", "utc_day"]


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
