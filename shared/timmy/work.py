"""What every kind of paid work shares (jobs, session requests): evaluate and quote a request, run
it under its output cap, price what it used, and give the free tier's hold back when it produced
nothing chargeable. The flows around it (when to pay, where the sats sit) are the use cases' own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from timmy.errors import Conflict, NotFound
from timmy.free_tier import FreeTierService
from timmy.metering import Estimate
from timmy.ports.evaluator import Evaluation, Evaluator
from timmy.ports.executor import EmptyOutput, ExecutionResult, Executor
from timmy.pricing.service import PricingService


@dataclass(frozen=True)
class Work:
    free_tier: FreeTierService
    pricing: PricingService
    evaluator: Callable[[], Evaluator]  # built on first use: a cold start that only reads builds neither
    executor: Callable[[], Executor]

    def evaluate(self, request: object, model: str | None, max_output_tokens: object) -> Evaluation:
        """Accept and quote `request`, or raise the evaluator's typed refusal."""
        return self.evaluator().evaluate(request, model, max_output_tokens)

    def run(self, request: str, estimate: Estimate) -> ExecutionResult:
        """Run `request` on the quoted model under the quoted output cap; an answer with no text is
        `EmptyOutput`, an `ExecutorError` like every other failure (never charged)."""
        result = self.executor().run(request, estimate.model, estimate.output_tokens)
        if not result.text.strip():
            raise EmptyOutput("the model answered with no text")
        return result

    def actual_charge_sats(self, result: ExecutionResult, estimate: Estimate) -> int:
        """What the work cost, priced like its quote and never above it."""
        return self.pricing.actual_charge_sats(result.usage, estimate.model, estimate)

    def release(self, pubkey: str, request_id: str) -> None:
        """Give back the free tier's hold for work that produced nothing chargeable; a hold already
        settled by a grant, or already gone, is left as it is."""
        with contextlib.suppress(Conflict, NotFound):
            self.free_tier.release_reservation(pubkey, request_id)
