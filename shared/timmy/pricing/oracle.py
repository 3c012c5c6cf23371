"""The BTC/USD price oracles (the ports are in `timmy.ports.price_source`): a fixed price for
offline use, and the exchange median.

`ExchangePriceOracle` asks every exchange at once (each call bounded by a timeout), drops answers
outside the sanity bounds, takes the median of the rest (so one bad feed moves nothing either way),
and keeps it in a cache shared by every Lambda (the table) so one fetch serves them all. A price
older than the maximum age is never used: with no fresher one, pricing fails with 503
`price_unavailable` rather than charge at a stale price.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal

from timmy.clock import Clock
from timmy.config import Settings
from timmy.errors import Unavailable
from timmy.ports.price_source import PriceCache, PriceQuote, PriceSource
from timmy.telemetry import LoggingTelemetry, Telemetry


class FixedPriceOracle:
    """A configured price, always fresh: offline and local use (PRICE_SOURCE=fixed)."""

    def __init__(self, price_usd: Decimal, clock: Clock):
        if not price_usd.is_finite() or price_usd <= 0:
            raise ValueError(f"a fixed BTC price must be > 0, not {price_usd}")
        self.price_usd = price_usd
        self.clock = clock

    def btc_usd(self) -> PriceQuote:
        return PriceQuote(self.price_usd, self.clock.now(), ("fixed",))


@dataclass(frozen=True)
class OracleConfig:
    max_age_seconds: float
    refresh_seconds: float
    min_usd: Decimal
    max_usd: Decimal
    spread_max_pct: Decimal
    timeout_seconds: float
    sources_min: int


def median(values: Sequence[Decimal]) -> Decimal:
    """The median (mean of the middle two for an even count), exact in Decimal."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


CLOCK_SKEW_TOLERANCE_SECONDS = 5
MEDIAN_OUTVOTES_ONE_SOURCE = 3  # from three sane prices on, one bad feed cannot move the median


class ExchangePriceOracle:
    """The median of the exchanges that answered in time, cached with a maximum age."""

    def __init__(
        self, sources: Sequence[PriceSource], cache: PriceCache, clock: Clock, config: OracleConfig, telemetry: Telemetry | None = None
    ):
        if not sources:
            raise ValueError("the exchange oracle needs at least one source")
        self.sources = list(sources)
        self.cache = cache
        self.clock = clock
        self.config = config
        self.telemetry: Telemetry = telemetry or LoggingTelemetry()
        self._memo: PriceQuote | None = None  # this process's copy, saves a read per request

    def _age(self, quote: PriceQuote) -> float:
        return self.clock.now() - quote.fetched_at

    def _usable(self, quote: PriceQuote | None) -> bool:
        """Younger than the maximum age, and not from the future (a writer's clock running ahead
        would otherwise keep a price 'fresh' for as long as it runs ahead)."""
        return quote is not None and -CLOCK_SKEW_TOLERANCE_SECONDS <= self._age(quote) < self.config.max_age_seconds

    def btc_usd(self) -> PriceQuote:
        if self._memo is not None and self._age(self._memo) < self.config.refresh_seconds:
            return self._memo
        cached = self.cache.load()
        usable = cached if self._usable(cached) else None
        if usable is not None and self._age(usable) < self.config.refresh_seconds:
            self._memo = usable
            return usable
        # Stale for refreshing, or no usable price at all: one process refetches (the lease); the
        # others go on with a still-usable price, or answer 503 at once rather than all asking the
        # exchanges (which are likely failing or rate-limiting just then).
        if not self.cache.try_lease(self.clock.now(), self.config.timeout_seconds * 2 + 1):
            if usable is not None:
                return usable
            raise self._unavailable()
        fresh = self.fetch()
        if fresh is not None:
            self.cache.save(fresh)
            self._memo = fresh
            return fresh
        if usable is not None:
            return usable
        raise self._unavailable()

    def _unavailable(self) -> Unavailable:
        self.telemetry.count("PriceUnavailable")
        return Unavailable(
            "no BTC/USD price fresher than "
            f"{int(self.config.max_age_seconds)} s is available from the exchanges; nothing can be priced now, retry shortly",
            code="price_unavailable",
        )

    def fetch(self) -> PriceQuote | None:
        """Ask every source at once; the median of the sane answers, or None if too few came."""
        answers = self._ask_all()
        sane = {name: price for name, price in answers.items() if self._sane(name, price)}
        if len(sane) < self.config.sources_min:
            self.telemetry.count("PriceFetchFailed")
            self.telemetry.warning("too few exchanges gave a usable BTC price", answered=sorted(sane), needed=self.config.sources_min)
            return None
        price = median(list(sane.values()))
        spread_pct = (max(sane.values()) - min(sane.values())) / price * 100
        if spread_pct > self.config.spread_max_pct and len(sane) < MEDIAN_OUTVOTES_ONE_SOURCE:
            # Two prices that disagree: their median is their mean, so one bad feed would move it.
            self.telemetry.count("PriceFetchFailed")
            self.telemetry.warning("two BTC/USD sources disagree beyond the bound; no price", prices={n: str(v) for n, v in sane.items()})
            return None
        if spread_pct > self.config.spread_max_pct:
            self.telemetry.count("PriceSpreadOverBound")
            self.telemetry.warning(
                "BTC/USD sources disagree beyond the bound; using their median",
                spread_pct=str(spread_pct.quantize(Decimal("0.01"))),
                prices={name: str(value) for name, value in sane.items()},
            )
        return PriceQuote(price, self.clock.now(), tuple(sorted(sane)))

    def _ask_all(self) -> dict[str, Decimal]:
        timeout = self.config.timeout_seconds
        pool = ThreadPoolExecutor(max_workers=len(self.sources), thread_name_prefix="price")
        try:
            futures: dict[Future[Decimal], str] = {pool.submit(source.fetch_btc_usd, timeout): source.name for source in self.sources}
            done, not_done = wait(futures, timeout=timeout)
        finally:
            # A source past the deadline is abandoned, not waited for (its socket timeout ends it).
            pool.shutdown(wait=False, cancel_futures=True)
        answers: dict[str, Decimal] = {}
        for future in done:
            try:
                answers[futures[future]] = future.result()
            except Exception as error:  # one bad source must never fail the oracle
                self.telemetry.count("PriceSourceFailed")
                self.telemetry.warning("a BTC price source failed", source=futures[future], error=str(error)[:200])
        for future in not_done:
            self.telemetry.count("PriceSourceFailed")
            self.telemetry.warning("a BTC price source timed out", source=futures[future], timeout_seconds=timeout)
        return answers

    def _sane(self, name: str, price: Decimal) -> bool:
        if price.is_finite() and self.config.min_usd <= price <= self.config.max_usd:
            return True
        self.telemetry.count("PriceOutOfBounds")
        self.telemetry.warning("a BTC price source answered outside the sanity bounds; ignored", source=name, price_usd=str(price))
        return False


def oracle_config(settings: Settings) -> OracleConfig:
    """The oracle's settings (PRICE_* environment variables)."""
    return OracleConfig(
        max_age_seconds=settings.price_max_age_seconds,
        refresh_seconds=min(settings.price_refresh_seconds, settings.price_max_age_seconds),
        min_usd=settings.price_min_usd,
        max_usd=settings.price_max_usd,
        spread_max_pct=settings.price_spread_max_pct,
        timeout_seconds=settings.price_fetch_timeout_seconds,
        sources_min=settings.price_sources_min,
    )
