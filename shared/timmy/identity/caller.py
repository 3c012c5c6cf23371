"""Who is calling: the identity a route resolved from the request, as the free tier sees it."""

from __future__ import annotations

from dataclasses import dataclass

from timmy.config import Tier


@dataclass(frozen=True)
class Caller:
    """An authenticated Nostr identity (hex x-only pubkey) with its effective tier."""

    pubkey: str
    tier: Tier
    blocked: bool = False
