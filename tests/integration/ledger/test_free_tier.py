"""The free-tier operations one at a time on DynamoDB Local (contract section 3)."""

from __future__ import annotations

import threading

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.errors import Conflict, InsufficientFunds, InvalidInput, NotFound
from timmy.free_tier.service import FreeTierService
from timmy.identity.caller import Caller
from timmy.ledger.ledger import Ledger
from timmy.ledger.model import OPERATOR_EQUITY, POOL

TRUSTED = Caller("a" * 64, "trusted")  # budget 200
ESTABLISHED = Caller("b" * 64, "established")  # budget 50


def test_the_pool_is_seeded_once_even_when_cold_starts_race(store: DynamoStore, clock: FixedClock) -> None:
    services = [FreeTierService(Ledger(store, clock), Settings(pool_seed_sats=2_000), clock) for _ in range(16)]
    threads = [threading.Thread(target=s.ensure_seeded) for s in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # A later cold start with another seed setting changes nothing either.
    FreeTierService(Ledger(store, clock), Settings(pool_seed_sats=9_999), clock).ensure_seeded()
    assert services[0].pool_status().balance_sats == 2_000
    assert Ledger(store, clock).account(OPERATOR_EQUITY).posted_balance_sats == -2_000


@pytest.mark.parametrize(
    ("caller", "reason"),
    [
        (None, "anonymous"),
        (Caller("c" * 64, "new"), "no free budget"),
        (Caller("d" * 64, "elite", blocked=True), "blocked"),
    ],
)
def test_anonymous_new_and_blocked_callers_are_gated(free_tier: FreeTierService, caller: Caller | None, reason: str) -> None:
    decision, reservation = free_tier.decide_and_reserve(caller, 10, "req")
    assert (decision.serve, decision.absorb_sats, decision.charge_sats, reservation) == ("gate", 0, 10, None)
    assert reason in decision.reason
    assert free_tier.pool_status().reserved_sats == 0


def test_a_free_decision_reserves_pool_and_budget_at_once(free_tier: FreeTierService) -> None:
    decision, reservation = free_tier.decide_and_reserve(TRUSTED, 120, "req-1")
    assert decision.serve == "free" and decision.charge_sats == 0
    assert reservation is not None and reservation.amount_sats == 120
    pool = free_tier.pool_status()
    assert (pool.balance_sats, pool.available_sats, pool.reserved_sats) == (2_000, 1_880, 120)
    usage = free_tier.usage_today(TRUSTED.pubkey, "trusted")
    assert (usage.reserved_sats, usage.absorbed_sats, usage.remaining_sats) == (120, 0, 80)


def test_a_partial_decision_is_advisory_and_debits_nothing(free_tier: FreeTierService) -> None:
    decision, reservation = free_tier.decide_and_reserve(ESTABLISHED, 80, "req-1")
    assert (decision.serve, decision.absorb_sats, decision.charge_sats, reservation) == ("partial", 50, 30, None)
    assert free_tier.pool_status().available_sats == 2_000
    assert free_tier.usage_today(ESTABLISHED.pubkey, "established").remaining_sats == 50


def test_record_grant_posts_the_actual_amount_and_returns_the_rest(free_tier: FreeTierService) -> None:
    _, reservation = free_tier.decide_and_reserve(TRUSTED, 120, "req-1")
    assert reservation is not None
    grant = free_tier.record_grant(TRUSTED.pubkey, "req-1", actual_absorbed=70, reserved_absorbed=120, paid_for="job:1")
    assert (grant.reserved_sats, grant.absorbed_sats) == (120, 70)
    pool = free_tier.pool_status()
    assert (pool.balance_sats, pool.available_sats, pool.reserved_sats, pool.absorbed_today_sats, pool.grants_today) == (
        1_930,
        1_930,
        0,
        70,
        1,
    )
    usage = free_tier.usage_today(TRUSTED.pubkey, "trusted")
    assert (usage.absorbed_sats, usage.reserved_sats, usage.remaining_sats) == (70, 0, 130)
    (row,) = free_tier.grants(None)["grants"]
    assert (row["absorbed_sats"], row["reserved_sats"], row["tier"], row["paid_for"], row["pool_balance_after_sats"]) == (
        70,
        120,
        "trusted",
        "job:1",
        1_930,
    )


def test_record_grant_refuses_more_than_reserved_and_a_wrong_reserved_amount(free_tier: FreeTierService) -> None:
    free_tier.decide_and_reserve(TRUSTED, 100, "req-1")
    with pytest.raises(InvalidInput):
        free_tier.record_grant(TRUSTED.pubkey, "req-1", actual_absorbed=101, reserved_absorbed=100)
    with pytest.raises(InvalidInput):
        free_tier.record_grant(TRUSTED.pubkey, "req-1", actual_absorbed=10, reserved_absorbed=99)
    with pytest.raises(NotFound):
        free_tier.record_grant(TRUSTED.pubkey, "never-reserved", actual_absorbed=1, reserved_absorbed=1)
    assert free_tier.pool_status().reserved_sats == 100


def test_failed_work_releases_its_reservation_in_full(free_tier: FreeTierService) -> None:
    free_tier.decide_and_reserve(TRUSTED, 150, "req-1")
    free_tier.release_reservation(TRUSTED.pubkey, "req-1")
    free_tier.release_reservation(TRUSTED.pubkey, "req-1")  # a replay changes nothing
    assert free_tier.pool_status().available_sats == 2_000
    assert free_tier.usage_today(TRUSTED.pubkey, "trusted").remaining_sats == 200
    with pytest.raises(Conflict):
        free_tier.record_grant(TRUSTED.pubkey, "req-1", actual_absorbed=10, reserved_absorbed=150)


def test_absorbing_nothing_releases_the_hold_without_a_grant_row(free_tier: FreeTierService) -> None:
    free_tier.decide_and_reserve(TRUSTED, 40, "req-1")
    grant = free_tier.record_grant(TRUSTED.pubkey, "req-1", actual_absorbed=0, reserved_absorbed=40)
    assert grant.absorbed_sats == 0
    assert free_tier.grants(None)["grants"] == []
    assert free_tier.pool_status().available_sats == 2_000


def test_the_sweeper_voids_an_expired_reservation(free_tier: FreeTierService, clock: FixedClock) -> None:
    free_tier.decide_and_reserve(TRUSTED, 90, "crashed-worker")
    free_tier.decide_and_reserve(ESTABLISHED, 30, "still-running")
    clock.advance(300)
    free_tier.decide_and_reserve(ESTABLISHED, 10, "later")
    assert free_tier.sweep().voided == 0  # nothing has expired yet
    clock.advance(301)
    assert free_tier.sweep().voided == 2
    assert free_tier.sweep().voided == 0
    assert free_tier.pool_status().reserved_sats == 10
    assert free_tier.usage_today(TRUSTED.pubkey, "trusted").remaining_sats == 200
    assert free_tier.usage_today(ESTABLISHED.pubkey, "established").remaining_sats == 40
    with pytest.raises(Conflict):
        free_tier.record_grant(TRUSTED.pubkey, "crashed-worker", actual_absorbed=90, reserved_absorbed=90)


def test_the_pool_never_overdraws_a_free_request_drops_to_partial(store: DynamoStore, clock: FixedClock) -> None:
    free_tier = FreeTierService(Ledger(store, clock), Settings(pool_seed_sats=100), clock)
    elite = Caller("e" * 64, "elite")
    decision, reservation = free_tier.decide_and_reserve(elite, 300, "big")
    assert (decision.serve, decision.absorb_sats, decision.charge_sats, reservation) == ("partial", 100, 200, None)
    partial = free_tier.reserve_partial_grant(elite, "big", 100)
    assert partial is not None and partial.amount_sats == 100
    assert free_tier.reserve_partial_grant(elite, "next", 50) is None  # the pool is empty now
    decision, _ = free_tier.decide_and_reserve(elite, 5, "small")
    assert (decision.serve, decision.reason) == ("gate", "the generosity pool is empty")
    free_tier.record_grant(elite.pubkey, "big", 100, 100)
    assert free_tier.pool_status().balance_sats == 0


def test_reserve_partial_grant_holds_only_what_the_pool_still_has(store: DynamoStore, clock: FixedClock) -> None:
    free_tier = FreeTierService(Ledger(store, clock), Settings(pool_seed_sats=30), clock)
    partial = free_tier.reserve_partial_grant(Caller("f" * 64, "elite"), "job-1", 50)
    assert partial is not None and partial.amount_sats == 30  # the job asks for the 20 sats short


def test_credit_is_the_floor_of_the_percentage_of_paid_sats(free_tier: FreeTierService) -> None:
    assert free_tier.credit(1_009, "charge-1") == 100
    assert free_tier.credit(1_009, "charge-1") == 100  # replayed: booked once
    assert free_tier.credit(9, "charge-2") == 0
    status = free_tier.pool_status()
    assert (status.balance_sats, status.credited_today_sats) == (2_100, 100)


def test_topup_moves_equity_to_the_pool_and_is_idempotent_by_id(free_tier: FreeTierService, ledger: Ledger) -> None:
    free_tier.topup(500, "thanks", transfer_id="topup-1")
    free_tier.topup(500, "thanks", transfer_id="topup-1")
    assert free_tier.pool_status().balance_sats == 2_500
    assert ledger.account(OPERATOR_EQUITY).posted_balance_sats == -2_500


def test_a_debit_the_pool_cannot_cover_is_refused(free_tier: FreeTierService, ledger: Ledger) -> None:
    free_tier.ensure_seeded()
    with pytest.raises(InsufficientFunds):
        ledger.create_transfer("too-much", POOL, "operator-revenue", 2_001, "subsidy", pubkey="x", day="d", request_hash="r", tier="elite")
    assert ledger.account(POOL).posted_balance_sats == 2_000


def test_the_day_is_the_utc_day_of_the_reservation(free_tier: FreeTierService, clock: FixedClock) -> None:
    clock.current = 1_790_035_199.0  # 23:59:59 UTC
    free_tier.decide_and_reserve(ESTABLISHED, 50, "before-midnight")
    assert free_tier.decide(ESTABLISHED, 1).serve == "gate"
    clock.advance(2)  # a new UTC day, a new budget
    assert free_tier.decide(ESTABLISHED, 50).serve == "free"
    free_tier.record_grant(ESTABLISHED.pubkey, "before-midnight", 50, 50)
    assert free_tier.usage_today(ESTABLISHED.pubkey, "established").absorbed_sats == 0


def test_the_outlook_is_decide_and_pool_status_in_one_round_trip(free_tier: FreeTierService, store: DynamoStore) -> None:
    free_tier.decide_and_reserve(ESTABLISHED, 30, "earlier")
    calls_before = store.usage.calls
    decision, status = free_tier.outlook(ESTABLISHED, 40)
    assert store.usage.calls - calls_before == 1
    assert decision == free_tier.decide(ESTABLISHED, 40) and (decision.serve, decision.absorb_sats) == ("partial", 20)
    assert status == free_tier.pool_status() and status.reserved_sats == 30
    assert free_tier.outlook(None, 40)[0].serve == "gate"


def test_a_credit_before_the_first_read_does_not_skip_the_seed(store: DynamoStore, clock: FixedClock) -> None:
    free_tier = FreeTierService(Ledger(store, clock), Settings(pool_seed_sats=2_000), clock)
    free_tier.ledger.create_transfer("charge-0", "operator-equity", "operator-revenue", 1_000, "test")
    batch = free_tier.ledger.batch()
    free_tier.add_credit(batch, 1_000, "charge-0")  # creates the pool account before any seed
    free_tier.ledger.commit(batch)
    assert free_tier.pool_status().balance_sats == 2_100


def test_the_budget_condition_holds_for_the_first_reservation_of_a_day(free_tier: FreeTierService) -> None:
    assert free_tier._try_reserve(ESTABLISHED, "too-big", 51, 51) == (None, False)  # 51 > the 50-sat budget
    assert free_tier.pool_status().reserved_sats == 0
    assert free_tier.usage_today(ESTABLISHED.pubkey, "established").reserved_sats == 0


def test_the_sweeper_reads_the_pending_index_page_by_page(free_tier: FreeTierService, clock: FixedClock) -> None:
    for index in range(7):
        free_tier.decide_and_reserve(TRUSTED, 5, f"r{index}")
    clock.advance(free_tier.settings.reservation_ttl_seconds + 1)
    assert free_tier.sweep(page_size=3).voided == 7
    assert free_tier.pool_status().reserved_sats == 0


def test_a_transaction_naming_an_item_twice_is_a_programming_error(ledger: Ledger) -> None:
    batch = ledger.batch()
    batch.transfer("same", "operator-equity", "operator-revenue", 1, "test")
    batch.transfer("same", "operator-equity", "operator-revenue", 1, "test")
    with pytest.raises(ValueError, match="twice"):
        ledger.commit(batch)
