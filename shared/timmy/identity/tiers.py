"""Trust tiers from paid history, and the identity profile item that holds that history.

A tier is earned when **all three** of its thresholds are met — settled paid sats, settled paid
requests and the age of the identity (since first seen) — so neither one big payment nor many
tiny ones nor a long-idle key alone climbs the ladder. An operator's pin wins over history; a
block does not change the tier but always gates (the free tier reads `Caller.blocked`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from timmy.config import TIERS, Settings, Tier
from timmy.ledger.updates import update_action
from timmy.pubkey import HEX32

SECONDS_PER_DAY = 86_400
PROFILE_SK = "PROFILE"


def profile_key(pubkey: str) -> dict[str, str]:
    """The table key of an identity's profile item."""
    return {"pk": f"IDENTITY#{pubkey}", "sk": PROFILE_SK}


@dataclass(frozen=True)
class Thresholds:
    paid_sats: int
    paid_requests: int
    age_days: int


def thresholds(settings: Settings) -> dict[Tier, Thresholds]:
    """The thresholds of every tier above `new`, from the settings (TIER_<TIER>_… variables)."""
    return {
        "established": Thresholds(
            settings.tier_established_paid_sats, settings.tier_established_paid_requests, settings.tier_established_age_days
        ),
        "trusted": Thresholds(settings.tier_trusted_paid_sats, settings.tier_trusted_paid_requests, settings.tier_trusted_age_days),
        "elite": Thresholds(settings.tier_elite_paid_sats, settings.tier_elite_paid_requests, settings.tier_elite_age_days),
    }


@dataclass(frozen=True)
class Profile:
    """An identity's standing: paid history and the operator's controls."""

    pubkey: str
    first_seen_at: int | None = None
    paid_sats: int = 0
    paid_requests: int = 0
    pinned_tier: Tier | None = None
    blocked: bool = False

    @classmethod
    def from_item(cls, pubkey: str, item: dict[str, Any] | None) -> Profile:
        if not item:
            return cls(pubkey=pubkey)
        pinned = item.get("pinned_tier")
        return cls(
            pubkey=pubkey,
            first_seen_at=int(item["first_seen_at"]) if item.get("first_seen_at") is not None else None,
            paid_sats=int(item.get("paid_sats", 0)),
            paid_requests=int(item.get("paid_requests", 0)),
            pinned_tier=pinned if pinned in TIERS else None,
            blocked=bool(item.get("blocked", False)),
        )

    def age_days(self, now: float) -> float:
        if self.first_seen_at is None:
            return 0.0
        return max(0.0, (now - self.first_seen_at) / SECONDS_PER_DAY)

    def history_tier(self, settings: Settings, now: float) -> Tier:
        """The highest tier whose every threshold the paid history meets."""
        earned: Tier = "new"
        for tier, limit in thresholds(settings).items():
            if self.paid_sats >= limit.paid_sats and self.paid_requests >= limit.paid_requests and self.age_days(now) >= limit.age_days:
                earned = tier
        return earned

    def tier(self, settings: Settings, now: float) -> Tier:
        """The effective tier: the operator's pin if any, else the one history earned."""
        return self.pinned_tier or self.history_tier(settings, now)


def record_paid_action(pubkey: str, sats: int, now: float) -> dict[str, Any]:
    """A `Store.transact` action (or `Batch.update`) booking one settled paid request of `sats` to `pubkey`.

    Payment flows put it in the same transaction as the charge, so history and money never
    disagree: ADD paid_sats and paid_requests, and SET first_seen_at if it is not set yet.
    `pubkey` is hex (callers resolved it when the identity authenticated).
    """
    if not HEX32.match(pubkey):
        raise ValueError(f"record_paid_action needs a hex pubkey, not {pubkey!r}")
    if isinstance(sats, bool) or not isinstance(sats, int) or sats <= 0:
        raise ValueError(f"a paid action is at least 1 sat, not {sats!r}")
    return update_action(
        profile_key(pubkey), add={"paid_sats": sats, "paid_requests": 1}, set_={"pubkey": pubkey}, set_if_absent={"first_seen_at": int(now)}
    )
