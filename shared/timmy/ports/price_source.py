"""BTC/USD prices: the oracle pricing asks, one exchange, and the cache shared between processes.

The oracles are in `timmy.pricing.oracle`; the exchanges in `timmy.adapters.exchanges`, the cache
in `timmy.adapters.price_cache`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class PriceQuote:
    """One BTC price in USD, when it was fetched (epoch seconds) and from which sources."""

    price_usd: Decimal
    fetched_at: float
    sources: tuple[str, ...] = ()


class PriceOracle(Protocol):
    def btc_usd(self) -> PriceQuote:
        """A price fresher than the maximum age, or Unavailable(code="price_unavailable")."""
        ...


class PriceSourceError(Exception):
    """One exchange did not give a usable price (down, slow, garbage)."""


class PriceSource(Protocol):
    """One public exchange API."""

    name: str

    def fetch_btc_usd(self, timeout_seconds: float) -> Decimal:
        """The exchange's last BTC/USD price; raises PriceSourceError."""
        ...


class PriceCache(Protocol):
    """Where the last good price is shared between processes (an item of the table)."""

    def load(self) -> PriceQuote | None: ...

    def save(self, quote: PriceQuote) -> None:
        """Store `quote` unless a newer one is already stored."""
        ...

    def try_lease(self, now: float, lease_seconds: float) -> bool:
        """True for the one process allowed to refetch now; others keep using the cached price."""
        ...
