"""The domain services of this process, built once per cold start from the settings.

Handlers call `services()`; tests call `reset_services()` after changing the environment, which
plays a new cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from timmy.clock import SystemClock
from timmy.config import Settings, get_settings
from timmy.ports.clock import Clock

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from timmy.estimate.service import EstimateService
    from timmy.free_tier.service import FreeTierService
    from timmy.identity.service import IdentityService
    from timmy.jobs.service import Jobs
    from timmy.ledger.ledger import Ledger
    from timmy.payments.donations import Donations
    from timmy.payments.invoices import InvoiceOwner, Invoices
    from timmy.payments.payouts import Payouts
    from timmy.ports.evaluator import Evaluator
    from timmy.ports.executor import Executor
    from timmy.ports.lightning import Lightning
    from timmy.ports.lnurl import LnurlPay
    from timmy.ports.price_source import PriceOracle
    from timmy.ports.queue import Queue
    from timmy.ports.store import Store
    from timmy.pricing.service import PricingService
    from timmy.sessions.service import Sessions
    from timmy.telemetry import Telemetry
    from timmy.work import Work


class Services:
    def __init__(self, settings: Settings, clock: Clock | None = None):
        self.settings = settings
        self.clock: Clock = clock or SystemClock()

    @cached_property
    def _dynamodb(self) -> Any:
        from timmy.adapters.dynamodb import DynamoStore

        return DynamoStore(self.settings.table_name)

    @cached_property
    def store(self) -> Store:
        """The single table (DynamoDB; DynamoDB Local when AWS_ENDPOINT_URL_DYNAMODB is set)."""
        store: Store = self._dynamodb
        return store

    @cached_property
    def idempotency_persistence(self) -> DynamoDBPersistenceLayer:
        """Powertools idempotency's records, in the same table and on the same client as the store."""
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        return DynamoDBPersistenceLayer(
            table_name=self.settings.table_name,
            key_attr="pk",
            sort_key_attr="sk",
            static_pk_value="IDEMPOTENCY",
            expiry_attr="ttl",
            boto3_client=self._dynamodb.client,
        )

    @cached_property
    def _sqs_client(self) -> Any:
        from timmy.adapters.sqs import sqs_client

        return sqs_client()

    def _queue(self, name: str, url: str) -> Queue:
        from timmy.adapters.sqs import SqsQueue

        return SqsQueue(name, url, lambda: self._sqs_client)  # one client for both queues, made on first use

    @cached_property
    def settlement_queue(self) -> Queue:
        return self._queue("settlement", self.settings.settlement_queue_url)

    @cached_property
    def work_queue(self) -> Queue:
        return self._queue("work", self.settings.work_queue_url)

    @cached_property
    def ledger(self) -> Ledger:
        from timmy.ledger.ledger import Ledger

        return Ledger(self.store, self.clock)

    @cached_property
    def free_tier(self) -> FreeTierService:
        from timmy.free_tier.service import FreeTierService

        return FreeTierService(self.ledger, self.settings, self.clock)

    @cached_property
    def identity(self) -> IdentityService:
        """Nostr identities (issue 6): NIP-98, nostr_tokens, tiers, the operator's pins and blocks."""
        from timmy.identity.service import IdentityService
        from timmy_http.secrets import token_secret

        return IdentityService(self.store, self.settings, self.clock, token_secret=lambda: token_secret(self.settings))

    @cached_property
    def telemetry(self) -> Telemetry:
        from timmy_http.telemetry import PowertoolsTelemetry

        return PowertoolsTelemetry()

    @cached_property
    def oracle(self) -> PriceOracle:
        """BTC/USD: the fixed price (local default) or the median of the exchanges, cached in the table."""
        from timmy.pricing.oracle import FixedPriceOracle

        if self.settings.price_source == "fixed":
            return FixedPriceOracle(self.settings.fixed_btc_price_usd, self.clock)
        from timmy.adapters.exchanges import exchange_sources
        from timmy.adapters.price_cache import DynamoPriceCache
        from timmy.pricing.oracle import ExchangePriceOracle, oracle_config

        return ExchangePriceOracle(
            exchange_sources(self.settings), DynamoPriceCache(self.store), self.clock, oracle_config(self.settings), self.telemetry
        )

    @cached_property
    def estimate(self) -> EstimateService:
        from timmy.estimate.service import EstimateService

        return EstimateService(self.pricing, self.free_tier)

    @cached_property
    def pricing(self) -> PricingService:
        from timmy.pricing.service import PricingService, pricing_config

        return PricingService(pricing_config(self.settings), self.oracle, telemetry=self.telemetry)

    @cached_property
    def lightning(self) -> Lightning:
        """The Lightning backend (contract section 6): simulated locally, LNbits in production."""
        if self.settings.lightning_backend == "simulated":
            from timmy.adapters.lightning_simulated import SimulatedLightning

            return SimulatedLightning(self.settings.timmy_data_dir, self.clock, notify_async=True)
        from timmy.adapters.lightning_lnbits import lnbits_from_settings
        from timmy_http.secrets import lightning_api_key

        return lnbits_from_settings(self.settings, lambda: lightning_api_key(self.settings), self.clock)

    @cached_property
    def invoices(self) -> Invoices:
        from timmy.payments.invoices import Invoices
        from timmy_http.secrets import token_secret

        return Invoices(self.ledger, self.lightning, self.clock, self.settings, lambda: token_secret(self.settings), self.invoice_owner)

    def invoice_owner(self, kind: str) -> InvoiceOwner | None:
        """The one dispatch point from a paid (or expired) invoice to what it was for."""
        owners: dict[str, Any] = {"donation": lambda: self.donations, "job": lambda: self.jobs, "session": lambda: self.sessions}
        found = owners.get(kind)
        return None if found is None else found()

    @cached_property
    def donations(self) -> Donations:
        from timmy.payments.donations import Donations

        return Donations(self.ledger, self.invoices, self.settings)

    @cached_property
    def payouts(self) -> Payouts:
        from timmy.payments.payouts import Payouts

        return Payouts(self.ledger, self.lightning, self.clock, self.settings)

    @cached_property
    def evaluator(self) -> Evaluator:
        from timmy.adapters.evaluator_rules import RulesEvaluator

        return RulesEvaluator.from_settings(self.settings, self.pricing)

    @cached_property
    def executor(self) -> Executor:
        from timmy.adapters.executor_routing import executor_from_settings
        from timmy_http.secrets import anthropic_api_key, openai_api_key

        return executor_from_settings(self.settings, lambda: openai_api_key(self.settings), lambda: anthropic_api_key(self.settings))

    @cached_property
    def refund_resolver(self) -> Any:
        from timmy.adapters.lnurl_pay import LnurlPayResolver

        return LnurlPayResolver.from_settings(self.settings)

    @cached_property
    def work(self) -> Work:
        from timmy.work import Work

        return Work(self.free_tier, self.pricing, lambda: self.evaluator, lambda: self.executor)

    def _paid_work(self) -> tuple[Ledger, Work, Invoices, Callable[[], Payouts], Clock, Settings, Callable[[], LnurlPay]]:
        """What `Jobs` and `Sessions` are built from first: `PaidWork`'s fields, in their order."""
        return self.ledger, self.work, self.invoices, lambda: self.payouts, self.clock, self.settings, lambda: self.refund_resolver

    @cached_property
    def jobs(self) -> Jobs:
        from timmy.jobs.service import Jobs

        return Jobs(*self._paid_work(), self.work_queue)

    @cached_property
    def sessions(self) -> Sessions:
        from timmy.sessions.service import Sessions

        return Sessions(*self._paid_work(), self.identity.caller_with)


_services: Services | None = None


def services() -> Services:
    """This process's services (built on first use)."""
    global _services
    if _services is None:
        _services = Services(get_settings())
    return _services


def reset_services(new: Services | None = None) -> Services:
    """Forget the cached settings and services (a new cold start); tests may inject their own."""
    global _services
    get_settings.cache_clear()
    _services = new or Services(get_settings())
    return _services
