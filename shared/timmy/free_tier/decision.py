"""The free-tier decision of contract section 3, as a pure function of what was read."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from timmy.config import Tier
from timmy.identity.caller import Caller
from timmy.ledger.model import require_sats

if TYPE_CHECKING:
    from typing_extensions import TypeIs

Serve = Literal["free", "partial", "gate"]


@dataclass(frozen=True)
class Decision:
    """Whether Timmy serves a request free, partly subsidised, or at full price (gate)."""

    serve: Serve
    absorb_sats: int
    charge_sats: int
    tier: Tier
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def subsidisable(caller: Caller | None) -> TypeIs[Caller]:
    """Whether the pool may pay for any of this caller's work: never for an anonymous or a blocked
    caller (a block always gates), so nothing is read to decide for them."""
    return caller is not None and not caller.blocked


def remaining_budget_sats(budget_sats: int, used_today_sats: int, blocked: bool = False) -> int:
    """What is left of a daily budget: nothing for a blocked identity (a block always gates)."""
    return 0 if blocked else max(0, budget_sats - used_today_sats)


def decide_from(caller: Caller | None, estimated_sats: int, budget_sats: int, used_today_sats: int, pool_available_sats: int) -> Decision:
    """`absorbable = min(estimated, budget − used today, pool available)`; free when it covers all.

    Anonymous, `new` (no budget), blocked callers and an empty pool are gated.
    """
    require_sats(estimated_sats, "an estimate")
    if caller is None:
        return Decision("gate", 0, estimated_sats, "new", "anonymous callers pay full price")
    if caller.blocked:
        return Decision("gate", 0, estimated_sats, caller.tier, "this identity is blocked by the operator")
    if budget_sats == 0:  # checked first: a 0-sat estimate is no way around the tier's rule
        return Decision("gate", 0, estimated_sats, caller.tier, f"the {caller.tier} tier has no free budget")
    remaining_today = remaining_budget_sats(budget_sats, used_today_sats)
    absorbable = max(0, min(estimated_sats, remaining_today, pool_available_sats))
    if absorbable == estimated_sats:
        return Decision("free", absorbable, 0, caller.tier, "within today's budget and the pool")
    if absorbable > 0:
        limit = "today's budget" if remaining_today < min(estimated_sats, pool_available_sats) else "the pool"
        return Decision("partial", absorbable, estimated_sats - absorbable, caller.tier, f"{limit} covers part of it")
    reason = "today's budget is used up" if remaining_today == 0 else "the generosity pool is empty"
    return Decision("gate", 0, estimated_sats, caller.tier, reason)
