"""The generosity pool as the HTTP routes show it (`GET /api/pool`, an admin top-up); kept in a
module of its own so a handler imports only this."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from timmy_http.answers import Answer

if TYPE_CHECKING:
    from timmy.free_tier.service import PoolStatus


class PoolView(Answer):
    balance_sats: int = Field(description="posted sats in the pool")
    available_sats: int = Field(description="balance less the sats held by open reservations")
    reserved_sats: int = Field(description="sats held by open reservations")
    absorbed_today_sats: int = Field(description="sats the pool paid for work today (UTC)")
    grants_today: int
    credited_today_sats: int = Field(description="sats credited from paid work today (UTC)")
    daily_budgets: dict[str, int] = Field(description="each tier's daily subsidy budget in sats")

    @classmethod
    def of(cls, status: PoolStatus) -> PoolView:
        return cls.model_validate(status, from_attributes=True)
