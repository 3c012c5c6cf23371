"""Time, behind a port so tests can move it (reservation expiry, UTC days, NIP-98 windows).

The implementations (`SystemClock`, `FixedClock`) and the day helpers are in `timmy.clock`.
"""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...
