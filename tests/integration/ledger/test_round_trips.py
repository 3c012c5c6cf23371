"""A grant in 2 round trips on the happy path (reserve optimistically, settle the reservation the
caller holds without reading it), and every guarantee of the read path kept when it is not happy."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.errors import AlreadyApplied, Conflict, InvalidInput, LedgerConflict, TransactionCancelled
from timmy.free_tier.service import FreeTierService, Reservation
from timmy.identity.caller import Caller
from timmy.ledger.ledger import ConditionFailed, Ledger, Limit

ELITE = Caller("e" * 64, "elite")  # 1,000 sats a day
TRUSTED = Caller("7" * 64, "trusted")  # 200 sats a day


def _calls(store: DynamoStore) -> int:
    return store.usage.snapshot()[0]


@pytest.fixture
def warm(free_tier: FreeTierService) -> FreeTierService:
    """A service past its cold start (the first call of a cold start reads to find the seed)."""
    free_tier.pool_status()
    return free_tier


def test_a_free_grant_is_two_round_trips(warm: FreeTierService, store: DynamoStore) -> None:
    before = _calls(store)
    decision, reservation = warm.decide_and_reserve(ELITE, 40, "req-1")
    assert decision.serve == "free" and decision.absorb_sats == 40 and reservation is not None
    assert _calls(store) - before == 1  # one transaction, no read
    grant = warm.record_grant(ELITE.pubkey, "req-1", 25, 40, paid_for="job:1", reservation=reservation)
    assert _calls(store) - before == 2
    assert (grant.reserved_sats, grant.absorbed_sats, grant.day) == (40, 25, reservation.day)
    status = warm.pool_status()
    assert (status.balance_sats, status.reserved_sats, status.absorbed_today_sats, status.grants_today) == (1_975, 0, 25, 1)
    usage = warm.usage_today(ELITE.pubkey, "elite")
    assert (usage.absorbed_sats, usage.reserved_sats) == (25, 0)
    (row,) = warm.grants(None)["grants"]
    assert (row["absorbed_sats"], row["reserved_sats"], row["paid_for"], row["tier"]) == (25, 40, "job:1", "elite")
    assert "pool_balance_after_sats" not in row  # only a settlement that read the pool knows it


def test_absorbing_nothing_with_the_reservation_is_one_void(warm: FreeTierService, store: DynamoStore) -> None:
    _, reservation = warm.decide_and_reserve(ELITE, 40, "req-1")
    before = _calls(store)
    assert warm.record_grant(ELITE.pubkey, "req-1", 0, 40, reservation=reservation).absorbed_sats == 0
    assert _calls(store) - before == 1
    assert warm.pool_status().available_sats == 2_000 and warm.grants(None)["grants"] == []
    assert warm.record_grant(ELITE.pubkey, "req-1", 0, 40, reservation=reservation).absorbed_sats == 0  # a retry: the same


def test_a_replayed_settlement_with_the_reservation_answers_the_first_grant(warm: FreeTierService) -> None:
    _, reservation = warm.decide_and_reserve(ELITE, 40, "req-1")
    first = warm.record_grant(ELITE.pubkey, "req-1", 30, 40, reservation=reservation)
    assert warm.record_grant(ELITE.pubkey, "req-1", 30, 40, reservation=reservation) == first  # a lost answer, re-sent
    with pytest.raises(AlreadyApplied):
        warm.record_grant(ELITE.pubkey, "req-1", 31, 40, reservation=reservation)
    assert warm.pool_status().balance_sats == 1_970


def test_a_swept_reservation_is_voided_also_without_a_read(warm: FreeTierService, clock: FixedClock) -> None:
    _, reservation = warm.decide_and_reserve(ELITE, 40, "req-1")
    clock.advance(601)
    assert warm.sweep().voided == 1
    with pytest.raises(Conflict) as voided:
        warm.record_grant(ELITE.pubkey, "req-1", 30, 40, reservation=reservation)
    assert voided.value.code == "reservation_voided"
    assert warm.pool_status().balance_sats == 2_000


def test_a_reservation_that_is_not_the_holds_record_cannot_move_another_day(warm: FreeTierService, clock: FixedClock) -> None:
    _, today = warm.decide_and_reserve(ELITE, 40, "today")
    clock.advance(86_400)
    _, tomorrow = warm.decide_and_reserve(ELITE, 40, "tomorrow")
    assert today is not None and tomorrow is not None and today.day != tomorrow.day
    forged = replace(today, day=tomorrow.day)  # a stale or wrong record of the hold
    grant = warm.record_grant(ELITE.pubkey, "today", 10, 40, reservation=forged)
    assert grant.day == today.day  # refused by the hold's conditions, then settled as read: on its own day
    with pytest.raises(InvalidInput):
        warm.record_grant(ELITE.pubkey, "tomorrow", 10, 39, reservation=tomorrow)  # not what it holds


def test_an_exhausted_budget_or_pool_still_decides_on_what_is_read(warm: FreeTierService, store: DynamoStore) -> None:
    _, first = warm.decide_and_reserve(TRUSTED, 150, "req-1")
    assert first is not None
    decision, reservation = warm.decide_and_reserve(TRUSTED, 80, "req-2")  # 50 left today
    assert (decision.serve, decision.absorb_sats, decision.charge_sats, reservation) == ("partial", 50, 30, None)
    assert warm.reserve_partial_grant(TRUSTED, "req-3", 80) == Reservation.from_transfer(warm.ledger.require_transfer(_id("req-3")))
    assert warm.usage_today(TRUSTED.pubkey, "trusted").remaining_sats == 0


def test_a_retry_of_a_reservation_gets_the_hold_back_in_one_failed_transaction_and_a_read(warm: FreeTierService) -> None:
    _, reservation = warm.decide_and_reserve(ELITE, 40, "req-1")
    decision, again = warm.decide_and_reserve(ELITE, 40, "req-1")
    assert again == reservation and decision.reason == "already reserved"
    warm.record_grant(ELITE.pubkey, "req-1", 40, 40, reservation=again)
    with pytest.raises(Conflict):
        warm.decide_and_reserve(ELITE, 40, "req-1")  # the id is spent once settled


def _id(request_hash: str) -> str:
    return f"subsidy:{TRUSTED.pubkey}:{request_hash}"


def test_a_snapshot_is_one_round_trip_and_retries_a_read_that_met_a_write(store: DynamoStore, clock: FixedClock) -> None:
    ledger = Ledger(store, clock, sleep=lambda seconds: None)
    batch = ledger.batch()
    batch.count(("C#1", "TOTALS"), {"type": "counter"}, seen=3)
    ledger.commit(batch)
    before = _calls(store)
    assert ledger.snapshot([("C#1", "TOTALS"), ("C#2", "TOTALS")])[("C#1", "TOTALS")]["seen"] == 3
    assert _calls(store) - before == 1

    class Busy:  # DynamoDB cancels a transactional read that meets a write transaction in flight
        def __init__(self, times: int):
            self.times = times

        def transact_get(self, keys: Any) -> Any:
            self.times -= 1
            if self.times >= 0:
                raise TransactionCancelled(["TransactionConflict"])
            return store.transact_get(keys)

    assert Ledger(Busy(2), clock, sleep=lambda s: None).snapshot([("C#1", "TOTALS")])  # type: ignore[arg-type]
    with pytest.raises(LedgerConflict):
        Ledger(Busy(100), clock, sleep=lambda s: None).snapshot([("C#1", "TOTALS")])  # type: ignore[arg-type]


def test_a_reservation_in_the_callers_transaction_commits_with_it_or_not_at_all(warm: FreeTierService, store: DynamoStore) -> None:
    """`add_free_reservation` adds the unread hold to the caller's own transaction: refused by the
    caller's own condition, or by the pool or the budget, nothing is written (no hold, no budget);
    committed, it is the same reservation `decide_and_reserve` makes, settled the same way."""
    ledger = warm.ledger
    row = ("ROW#1", "ROW")
    batch = ledger.batch()
    batch.put_once("row:1", {"pk": row[0], "sk": row[1], "state": "active"})
    ledger.commit(batch)

    def attempt(state: str, caller: Caller, sats: int, request_hash: str) -> tuple[Reservation, Exception | None]:
        batch = ledger.batch()
        batch.transition("row:1", row, [state], state)
        added = warm.add_free_reservation(batch, caller, sats, request_hash)
        assert added is not None and added[0].serve == "free" and added[0].absorb_sats == sats
        try:
            ledger.commit(batch)
        except ConditionFailed as failed:
            return added[1], failed
        return added[1], None

    _, failed = attempt("closing", ELITE, 40, "req-1")  # the caller's own condition refuses
    assert isinstance(failed, ConditionFailed) and failed.ids(Limit.STATE) and ledger.transfer(_id_of(ELITE, "req-1")) is None
    assert warm.usage_today(ELITE.pubkey, "elite").reserved_sats == 0 and warm.pool_status().reserved_sats == 0
    warm.decide_and_reserve(TRUSTED, 190, "req-2")
    held, failed = attempt("active", TRUSTED, 20, "req-3")  # 10 left of the 200-sat budget
    assert isinstance(failed, ConditionFailed) and warm.refused_reservation(failed, held) and not failed.ids(Limit.STATE)
    assert ledger.transfer(_id("req-3")) is None and warm.usage_today(TRUSTED.pubkey, "trusted").reserved_sats == 190
    decision, again = warm.decide_and_reserve(TRUSTED, 20, "req-3", unread=False)  # decided on a read
    assert (decision.serve, decision.absorb_sats, again) == ("partial", 10, None)

    before = _calls(store)
    reservation, failed = attempt("active", ELITE, 40, "req-4")
    assert failed is None and _calls(store) - before == 1
    assert reservation == Reservation.from_transfer(ledger.require_transfer(_id_of(ELITE, "req-4")))
    assert warm.record_grant(ELITE.pubkey, "req-4", 30, 40, reservation=reservation).absorbed_sats == 30
    assert warm.usage_today(ELITE.pubkey, "elite").absorbed_sats == 30


def _id_of(caller: Caller, request_hash: str) -> str:
    return f"subsidy:{caller.pubkey}:{request_hash}"
