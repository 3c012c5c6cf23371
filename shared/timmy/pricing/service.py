"""`PricingService`: the one place that prices work (contract section 1).

Every path — the estimate route, jobs, sessions, the worker's settlement — prices tokens through
`work_fee_usd`, so the infra overhead and the margin are applied exactly once (the earlier
version applied them twice on the session path: see tests/unit/test_pricing.py's regression test).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext

from timmy.config import Settings
from timmy.metering import Estimate, TokenUsage
from timmy.money import usd_to_sats
from timmy.ports.price_source import PriceOracle
from timmy.pricing.catalogue import TOKENS_PER_PRICE_UNIT, Catalogue, Model, default_catalogue
from timmy.pricing.limits import RequestLimits
from timmy.pricing.tokens import FRAMING_TOKENS, input_tokens_upper_bound
from timmy.telemetry import LoggingTelemetry, Telemetry

_HUNDRED = Decimal(100)


@dataclass(frozen=True)
class PricingConfig:
    infra_overhead_pct: Decimal
    margin_pct: Decimal
    default_model: str
    limits: RequestLimits


class PricingService:
    """Estimates (upper bounds) and actual charges, with the same arithmetic."""

    def __init__(self, config: PricingConfig, oracle: PriceOracle, catalogue: Catalogue | None = None, telemetry: Telemetry | None = None):
        self.config = config
        self.oracle = oracle
        self.catalogue = catalogue or default_catalogue()
        self.telemetry: Telemetry = telemetry or LoggingTelemetry()

    def model(self, model: str | Model | None) -> Model:
        """The catalogue model for a name (None: the default model); unknown names are a 400."""
        if isinstance(model, Model):
            return model
        if model is not None and not isinstance(model, str):
            raise TypeError("model is a catalogue name")
        return self.catalogue.get(self.config.default_model if model is None else model)

    def estimate_input_tokens(self, request: str) -> int:
        """An upper bound of the request's input tokens without a tokenizer: the byte bound
        (timmy.pricing.tokens says why it holds), checked against the input-token limit."""
        bound = input_tokens_upper_bound(self.config.limits.check_request(request))
        self.config.limits.check_input_tokens(bound)
        return bound

    def estimate_output_tokens(self, request: str, model: str | Model | None, max_output_tokens: int | None = None) -> int:
        """The request's `max_output_tokens` (the model's default when absent, 1 … its maximum).

        The executor enforces it as the completion cap, so it bounds the actual output.
        """
        return self.config.limits.check_max_output_tokens(max_output_tokens, self.model(model))

    def work_fee_usd(self, input_tokens: int, output_tokens: int, model: str | Model | None) -> Decimal:
        """Raw model cost × (1 + infra overhead) × (1 + margin): the only place either is applied."""
        priced = self.model(model)
        with localcontext() as context:
            context.prec = 60  # exact for catalogue prices; should a long setting ever round, it rounds up
            context.rounding = ROUND_CEILING
            raw_usd = (
                input_tokens * priced.input_usd_per_million_tokens + output_tokens * priced.output_usd_per_million_tokens
            ) / TOKENS_PER_PRICE_UNIT
            return raw_usd * (1 + self.config.infra_overhead_pct / _HUNDRED) * (1 + self.config.margin_pct / _HUNDRED)

    def estimate_request_cost(self, request: str, model: str | Model | None = None, max_output_tokens: int | None = None) -> Estimate:
        """The single entry used by jobs, sessions and the estimate route: an upper bound in sats.

        Raises InvalidInput (400) for a bad request, unknown model or bad max_output_tokens,
        PayloadTooLarge (413) over the limits or the context window, Unavailable (503
        `price_unavailable`) when no fresh BTC price exists.
        """
        priced = self.model(model)
        bound = self.estimate_input_tokens(request)  # the request and its size first: a caller fixes those first
        output_tokens = self.estimate_output_tokens(request, priced, max_output_tokens)
        btc_price_usd = self.oracle.btc_usd().price_usd
        estimate = self._estimate(priced, bound, output_tokens, btc_price_usd)
        if priced.tokenizer is not None and self._estimate(priced, 0, output_tokens, btc_price_usd).sats < estimate.sats:
            # The bound could be moving the quote: count exactly (the vocabulary loads once per
            # environment, ~0.3 s), and quote the smaller of two upper bounds.
            from timmy.pricing.tokenizer import count_tokens

            exact = count_tokens(request, priced.tokenizer) + FRAMING_TOKENS
            estimate = self._estimate(priced, min(bound, exact), output_tokens, btc_price_usd)
        self.config.limits.check_context_window(estimate.input_tokens, output_tokens, priced)
        return estimate

    def _estimate(self, model: Model, input_tokens: int, output_tokens: int, btc_price_usd: Decimal) -> Estimate:
        fee_usd = self.work_fee_usd(input_tokens, output_tokens, model)
        return Estimate(model.name, input_tokens, output_tokens, fee_usd, usd_to_sats(fee_usd, btc_price_usd), btc_price_usd)

    def actual_charge_sats(self, usage: TokenUsage | None, model: str | Model | None, estimate: Estimate) -> int:
        """What a request costs once done: its reported usage, priced like the estimate, at the
        estimate's BTC price (the price the user was quoted), and never more than the estimate.

        No usage reported → the estimate is charged. Usage above the estimate (a provider ignored
        the cap, or the input bound failed) → capped at the estimate; the overrun is logged and
        counted (metric `TokenEstimateOverrun`).
        """
        priced = self.model(model)
        if priced.name != estimate.model:
            raise ValueError(f"usage of {priced.name} cannot settle an estimate for {estimate.model}")
        if usage is None:
            return estimate.sats
        if usage.input_tokens > estimate.input_tokens or usage.output_tokens > estimate.output_tokens:
            self.telemetry.count("TokenEstimateOverrun")
            self.telemetry.warning(
                "token usage above the estimate; charge capped at the estimate",
                model=priced.name,
                estimated_input_tokens=estimate.input_tokens,
                estimated_output_tokens=estimate.output_tokens,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
            )
        actual = self._estimate(priced, usage.input_tokens, usage.output_tokens, estimate.btc_price_usd)
        # Work done on a paid model is never free, even when a provider reports no tokens.
        return min(max(actual.sats, 1 if estimate.sats else 0), estimate.sats)


def pricing_config(settings: Settings) -> PricingConfig:
    """The pricing settings: overhead, margin, default model and the request limits."""
    return PricingConfig(
        infra_overhead_pct=settings.infra_overhead_pct,
        margin_pct=settings.margin_pct,
        default_model=settings.default_model,
        limits=RequestLimits(request_bytes_max=settings.request_bytes_max, request_input_tokens_max=settings.request_input_tokens_max),
    )
