"""The exchange oracle against fake exchange servers on local ports, cached in DynamoDB Local."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal

import pytest

from tests.integration.fake_exchanges import FakeExchange
from timmy.adapters.dynamodb import DynamoStore
from timmy.adapters.exchanges import BitstampSource, CoinbaseSource, KrakenSource
from timmy.adapters.price_cache import CURRENT_SK, PRICE_PK, DynamoPriceCache
from timmy.clock import FixedClock
from timmy.errors import Unavailable
from timmy.pricing.oracle import ExchangePriceOracle, OracleConfig
from timmy.telemetry import LoggingTelemetry

TIMEOUT_SECONDS = 0.3
CONFIG = OracleConfig(
    max_age_seconds=300,
    refresh_seconds=60,
    min_usd=Decimal("1000"),
    max_usd=Decimal("10000000"),
    spread_max_pct=Decimal("2"),
    timeout_seconds=TIMEOUT_SECONDS,
    sources_min=2,
)


@pytest.fixture
def exchanges() -> Iterator[dict[str, FakeExchange]]:
    fakes = {
        "coinbase": FakeExchange("coinbase", "100000.00"),
        "kraken": FakeExchange("kraken", "100100.0"),
        "bitstamp": FakeExchange("bitstamp", "99950"),
    }
    try:
        yield fakes
    finally:
        for fake in fakes.values():
            fake.close()


def make_oracle(exchanges: dict[str, FakeExchange], store: DynamoStore, clock: FixedClock) -> ExchangePriceOracle:
    sources = [
        CoinbaseSource(exchanges["coinbase"].base_url),
        KrakenSource(exchanges["kraken"].base_url),
        BitstampSource(exchanges["bitstamp"].base_url),
    ]
    return ExchangePriceOracle(sources, DynamoPriceCache(store), clock, CONFIG, LoggingTelemetry())


def counts(oracle: ExchangePriceOracle) -> dict[str, int]:
    assert isinstance(oracle.telemetry, LoggingTelemetry)
    return oracle.telemetry.counts


def test_median_of_three_is_cached_in_the_table(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    clock = FixedClock()
    quote = make_oracle(exchanges, store, clock).btc_usd()
    assert quote.price_usd == Decimal("100000.00")
    assert quote.sources == ("bitstamp", "coinbase", "kraken")
    item = store.get(PRICE_PK, CURRENT_SK)
    assert item is not None and item["price_usd"] == "100000.00" and item["fetched_at_ms"] == int(clock.now() * 1000)


def test_one_fetch_serves_every_lambda(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    clock = FixedClock()
    make_oracle(exchanges, store, clock).btc_usd()
    clock.advance(30)
    for _ in range(5):  # five other cold starts within the refresh interval
        assert make_oracle(exchanges, store, clock).btc_usd().price_usd == Decimal("100000.00")
    assert [fake.requests for fake in exchanges.values()] == [1, 1, 1]


def test_one_source_down_uses_the_median_of_the_others(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    exchanges["kraken"].down()
    oracle = make_oracle(exchanges, store, FixedClock())
    quote = oracle.btc_usd()
    assert quote.price_usd == Decimal("99975.000")  # mean of the middle two of 100000.00 and 99950
    assert quote.sources == ("bitstamp", "coinbase")
    assert counts(oracle)["PriceSourceFailed"] == 1


@pytest.mark.parametrize("mode", ["garbage", "wrong_shape", "error"])
def test_a_source_answering_garbage_is_ignored(exchanges: dict[str, FakeExchange], store: DynamoStore, mode: str) -> None:
    exchanges["coinbase"].mode = mode
    oracle = make_oracle(exchanges, store, FixedClock())
    assert oracle.btc_usd().sources == ("bitstamp", "kraken")
    assert counts(oracle)["PriceSourceFailed"] == 1


def test_a_slow_source_is_abandoned_at_the_timeout(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    exchanges["bitstamp"].mode = "slow"
    oracle = make_oracle(exchanges, store, FixedClock())
    started = time.monotonic()
    quote = oracle.btc_usd()
    elapsed = time.monotonic() - started
    assert quote.sources == ("coinbase", "kraken")
    assert quote.price_usd == Decimal("100050.000")
    assert elapsed < TIMEOUT_SECONDS + 0.5, f"the oracle waited {elapsed:.2f}s for a slow source"


@pytest.mark.parametrize("absurd", ["1", "0.00000001", "999999999999", "-5", "NaN"])
def test_an_absurd_price_is_ignored(exchanges: dict[str, FakeExchange], store: DynamoStore, absurd: str) -> None:
    exchanges["kraken"].price = absurd
    oracle = make_oracle(exchanges, store, FixedClock())
    quote = oracle.btc_usd()
    assert quote.sources == ("bitstamp", "coinbase")
    assert Decimal("99950") <= quote.price_usd <= Decimal("100000")
    assert counts(oracle).get("PriceOutOfBounds", 0) + counts(oracle).get("PriceSourceFailed", 0) == 1


def test_one_bad_feed_inside_the_bounds_does_not_move_the_median(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    exchanges["kraken"].price = "150000"  # sane, but far from the others
    oracle = make_oracle(exchanges, store, FixedClock())
    assert oracle.btc_usd().price_usd == Decimal("100000.00")
    assert counts(oracle)["PriceSpreadOverBound"] == 1
    assert isinstance(oracle.telemetry, LoggingTelemetry)
    assert any("disagree" in message for message, _ in oracle.telemetry.warnings)


def test_all_down_within_the_max_age_uses_the_cached_price(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    clock = FixedClock()
    make_oracle(exchanges, store, clock).btc_usd()
    for fake in exchanges.values():
        fake.down()
    clock.advance(CONFIG.max_age_seconds - 1)  # past the refresh interval, within the maximum age
    oracle = make_oracle(exchanges, store, clock)
    assert oracle.btc_usd().price_usd == Decimal("100000.00")
    assert counts(oracle)["PriceFetchFailed"] == 1


def test_all_down_past_the_max_age_is_503(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    clock = FixedClock()
    oracle = make_oracle(exchanges, store, clock)
    oracle.btc_usd()
    for fake in exchanges.values():
        fake.down()
    clock.advance(CONFIG.max_age_seconds)
    with pytest.raises(Unavailable) as caught:
        oracle.btc_usd()  # the same process: its memo is as stale as the table's item
    assert caught.value.code == "price_unavailable" and caught.value.status_code == 503
    with pytest.raises(Unavailable):
        make_oracle(exchanges, store, clock).btc_usd()


def test_too_few_sources_is_503_with_no_cache(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    exchanges["coinbase"].down()
    exchanges["kraken"].mode = "garbage"
    with pytest.raises(Unavailable, match="no BTC/USD price"):
        make_oracle(exchanges, store, FixedClock()).btc_usd()


def test_while_another_lambda_refetches_the_cached_price_is_used(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    clock = FixedClock()
    make_oracle(exchanges, store, clock).btc_usd()
    clock.advance(CONFIG.refresh_seconds + 1)
    assert DynamoPriceCache(store).try_lease(clock.now(), 10)  # another Lambda is refetching
    exchanges["coinbase"].price = "120000"
    assert make_oracle(exchanges, store, clock).btc_usd().price_usd == Decimal("100000.00")
    assert [fake.requests for fake in exchanges.values()] == [1, 1, 1]


def test_a_slow_writer_never_overwrites_a_newer_price(store: DynamoStore) -> None:
    from timmy.ports.price_source import PriceQuote

    cache = DynamoPriceCache(store)
    cache.save(PriceQuote(Decimal("101000"), 2000.0, ("coinbase",)))
    cache.save(PriceQuote(Decimal("99000"), 1000.0, ("kraken",)))
    loaded = cache.load()
    assert loaded is not None and loaded.price_usd == Decimal("101000") and loaded.fetched_at == 2000.0


def test_two_sources_that_disagree_give_no_price(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    """With one source down, the median of the other two is their mean: a feed quoting in cents
    (sane by the bounds) would set the price. Two that disagree give no price at all."""
    exchanges["coinbase"].down()
    exchanges["bitstamp"].price = "9500000"
    oracle = make_oracle(exchanges, store, FixedClock())
    with pytest.raises(Unavailable):
        oracle.btc_usd()
    assert counts(oracle)["PriceFetchFailed"] == 1


def test_with_no_usable_price_one_lambda_asks_the_exchanges_and_the_others_answer_503(
    exchanges: dict[str, FakeExchange], store: DynamoStore
) -> None:
    clock = FixedClock()
    for fake in exchanges.values():
        fake.down()
    with pytest.raises(Unavailable):
        make_oracle(exchanges, store, clock).btc_usd()  # takes the lease, asks, fails
    asked = [fake.requests for fake in exchanges.values()]
    for _ in range(5):  # other Lambdas while the lease holds: 503 at once, no exchange asked
        with pytest.raises(Unavailable):
            make_oracle(exchanges, store, clock).btc_usd()
    assert [fake.requests for fake in exchanges.values()] == asked


def test_a_price_stamped_in_the_future_is_not_used(exchanges: dict[str, FakeExchange], store: DynamoStore) -> None:
    ahead = FixedClock()
    ahead.advance(600)  # a Lambda whose clock runs ten minutes ahead writes the price
    make_oracle(exchanges, store, ahead).btc_usd()
    for fake in exchanges.values():
        fake.down()
    with pytest.raises(Unavailable):
        make_oracle(exchanges, store, FixedClock()).btc_usd()
