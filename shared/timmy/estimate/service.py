"""The estimate use case: an upper bound in sats, the pool, and the caller's free-tier outlook.

Advisory: the free tier's `outlook` reads and debits nothing. The HTTP models of the answer are in
`timmy_http.estimate`; the Lambda glue is `functions/estimate/app.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from timmy.free_tier.decision import Decision
from timmy.free_tier.service import FreeTierService, PoolStatus
from timmy.identity.caller import Caller
from timmy.metering import Estimate
from timmy.pricing.service import PricingService


@dataclass(frozen=True)
class EstimateOutcome:
    quote: Estimate
    decision: Decision
    pool: PoolStatus
    caller: Caller | None


class EstimateService:
    def __init__(self, pricing: PricingService, free_tier: FreeTierService):
        self.pricing = pricing
        self.free_tier = free_tier

    def estimate(self, request: str | None, model: str | None, max_output_tokens: int | None, caller: Caller | None) -> EstimateOutcome:
        """Check the request against the limits, price it, and ask the free tier (raises InvalidInput,
        RequestTooLarge, Unavailable as pricing does)."""
        text = self.pricing.config.limits.check_request(request)
        quote = self.pricing.estimate_request_cost(text, model, max_output_tokens)
        decision, pool = self.free_tier.outlook(caller, quote.sats)
        return EstimateOutcome(quote, decision, pool, caller)

    def pool(self) -> PoolStatus:
        """The public view of the generosity pool."""
        return self.free_tier.pool_status()
