"""What every kind of paid work shares (jobs, session requests): evaluate and quote a request, run
it under its output cap, price what it used, and give the free tier's hold back when it produced
nothing chargeable (`Work`); and what the use cases that sell it share (`PaidWork`): the invoices
they own, the payouts that pay back what is owed. The flows themselves (when to pay, where the sats
sit) are the use cases' own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from timmy.clock import Clock
from timmy.config import Settings
from timmy.errors import Conflict, NotFound
from timmy.free_tier.service import FreeTierService
from timmy.ledger.ledger import Ledger
from timmy.metering import Estimate
from timmy.payments.invoices import Invoices, OwnerDefaults
from timmy.payments.payouts import Payouts
from timmy.ports.evaluator import Evaluation, Evaluator
from timmy.ports.executor import EmptyOutput, ExecutionResult, Executor
from timmy.ports.lnurl import LnurlPay
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


@dataclass(eq=False)
class PaidWork(OwnerDefaults):
    """The base of a use case that sells work (`Jobs`, `Sessions`): it owns invoices (settlement
    calls it back as their owner), runs the work through `work`, and pays back what it owes with
    `_payouts`, to an invoice the caller sends or one fetched from the caller's refund address."""

    ledger: Ledger
    work: Work
    invoices: Invoices
    _payouts: Callable[[], Payouts]  # built on first use: only a refund or a close pays
    clock: Clock
    settings: Settings
    _refund_resolver: Callable[[], LnurlPay] | None

    @property
    def free_tier(self) -> FreeTierService:
        return self.work.free_tier

    def refund_invoice(self, refund_address: str | None, amount_sats: int, memo: str) -> str | None:
        """A BOLT11 invoice for exactly `amount_sats` from `refund_address` (LNURL-pay), or None
        when there is no address or no resolver; the resolver's errors pass through."""
        if not refund_address or self._refund_resolver is None:
            return None
        return self._refund_resolver().invoice_for(refund_address, amount_sats, memo).bolt11
