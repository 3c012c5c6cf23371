"""The BTC price cache in the single table: one item that every Lambda reads, and a refetch lease.

Items: pk `PRICE#BTCUSD`, sk `CURRENT` (price as a string, fetched_at_ms) and sk `LEASE`
(expires_at_ms). Both carry a `ttl` so the table cleans them up if the oracle is ever switched off.
"""

from __future__ import annotations

from decimal import Decimal

from timmy.ports.price_source import PriceQuote
from timmy.ports.store import Store

PRICE_PK = "PRICE#BTCUSD"
CURRENT_SK = "CURRENT"
LEASE_SK = "LEASE"
ITEM_TTL_SECONDS = 86_400


class DynamoPriceCache:
    def __init__(self, store: Store):
        self.store = store

    def load(self) -> PriceQuote | None:
        item = self.store.get(PRICE_PK, CURRENT_SK)
        if item is None:
            return None
        return PriceQuote(Decimal(str(item["price_usd"])), int(item["fetched_at_ms"]) / 1000, tuple(item.get("sources") or ()))

    def save(self, quote: PriceQuote) -> None:
        """Write `quote`, unless a newer price is already stored (a slow fetch never wins)."""
        fetched_at_ms = int(quote.fetched_at * 1000)
        self.store.put(
            {
                "pk": PRICE_PK,
                "sk": CURRENT_SK,
                "price_usd": str(quote.price_usd),
                "fetched_at_ms": fetched_at_ms,
                "sources": list(quote.sources),
                "ttl": int(quote.fetched_at) + ITEM_TTL_SECONDS,
            },
            condition="attribute_not_exists(pk) OR fetched_at_ms < :fetched_at_ms",
            values={":fetched_at_ms": fetched_at_ms},
        )

    def try_lease(self, now: float, lease_seconds: float) -> bool:
        """Take the refetch lease if nobody holds an unexpired one (a conditional put)."""
        now_ms = int(now * 1000)
        return self.store.put(
            {"pk": PRICE_PK, "sk": LEASE_SK, "expires_at_ms": now_ms + int(lease_seconds * 1000), "ttl": int(now) + ITEM_TTL_SECONDS},
            condition="attribute_not_exists(pk) OR expires_at_ms < :now_ms",
            values={":now_ms": now_ms},
        )
