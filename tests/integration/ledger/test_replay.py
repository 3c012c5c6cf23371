"""Every operation replayed with the same id applies once, also when the first answer was lost."""

from __future__ import annotations

from typing import Any

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.errors import AlreadyApplied, Conflict
from timmy.free_tier.service import FreeTierService
from timmy.identity.caller import Caller
from timmy.ledger.ledger import Ledger
from timmy.ledger.model import OPERATOR_EQUITY, OPERATOR_REVENUE, POOL

CALLER = Caller("a" * 64, "elite")


class LosesAnswers:
    """A store whose next transaction commits but whose answer never arrives (a timeout)."""

    def __init__(self, store: DynamoStore):
        self.store = store
        self.lose_next = False

    def transact(self, actions: Any) -> None:
        self.store.transact(actions)
        if self.lose_next:
            self.lose_next = False
            raise ConnectionError("read timeout: the transaction committed, the answer was lost")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def flaky(store: DynamoStore) -> LosesAnswers:
    return LosesAnswers(store)


@pytest.fixture
def service(flaky: LosesAnswers, clock: FixedClock) -> FreeTierService:
    free_tier = FreeTierService(Ledger(flaky, clock), Settings(pool_seed_sats=1_000), clock)
    free_tier.ensure_seeded()
    return free_tier


def test_a_reservation_whose_answer_was_lost_is_recognised_on_retry(service: FreeTierService, flaky: LosesAnswers) -> None:
    flaky.lose_next = True
    with pytest.raises(ConnectionError):
        service.decide_and_reserve(CALLER, 100, "req-1")
    decision, reservation = service.decide_and_reserve(CALLER, 100, "req-1")
    assert decision.serve == "free" and reservation is not None and reservation.amount_sats == 100
    assert service.pool_status().reserved_sats == 100  # held once, not twice
    assert service.usage_today(CALLER.pubkey, "elite").reserved_sats == 100


def test_a_grant_whose_answer_was_lost_is_recognised_on_retry(service: FreeTierService, flaky: LosesAnswers) -> None:
    service.decide_and_reserve(CALLER, 100, "req-1")
    flaky.lose_next = True
    with pytest.raises(ConnectionError):
        service.record_grant(CALLER.pubkey, "req-1", 60, 100)
    grant = service.record_grant(CALLER.pubkey, "req-1", 60, 100)
    assert grant.absorbed_sats == 60
    status = service.pool_status()
    assert (status.balance_sats, status.grants_today, status.absorbed_today_sats) == (940, 1, 60)
    with pytest.raises(AlreadyApplied):
        service.record_grant(CALLER.pubkey, "req-1", 61, 100)  # the same id cannot post another amount


def test_replays_of_every_operation_apply_once(service: FreeTierService, flaky: LosesAnswers, clock: FixedClock) -> None:
    ledger = service.ledger
    for _ in range(3):
        service.ensure_seeded()
        service._seeded = False  # as a fresh cold start would
        service.decide_and_reserve(CALLER, 50, "r-free")
        service.reserve_partial_grant(CALLER, "r-partial", 30)
        service.credit(500, "charge-9")
        service.topup(70, transfer_id="topup-9")
        ledger.create_transfer("plain-1", OPERATOR_EQUITY, OPERATOR_REVENUE, 5, "test")
    for _ in range(3):
        service.record_grant(CALLER.pubkey, "r-free", 50, 50)
        service.release_reservation(CALLER.pubkey, "r-partial")
    clock.advance(10_000)
    assert service.sweep().voided == 0
    status = service.pool_status()
    assert status.balance_sats == 1_000 - 50 + 50 + 70
    assert (status.grants_today, status.credited_today_sats, status.reserved_sats) == (1, 50, 0)
    assert ledger.account(OPERATOR_REVENUE).posted_balance_sats == 50 - 50 + 5


def test_a_lost_answer_on_a_plain_transfer_is_recognised(service: FreeTierService, flaky: LosesAnswers) -> None:
    ledger = service.ledger
    flaky.lose_next = True
    with pytest.raises(ConnectionError):
        ledger.create_transfer("t-1", OPERATOR_EQUITY, POOL, 10, "pool_topup")
    assert ledger.create_transfer("t-1", OPERATOR_EQUITY, POOL, 10, "pool_topup").amount_sats == 10
    with pytest.raises(AlreadyApplied):
        ledger.create_transfer("t-1", OPERATOR_EQUITY, POOL, 11, "pool_topup")
    assert ledger.account(POOL).posted_balance_sats == 1_010


def test_a_settled_request_id_is_never_served_free_again(service: FreeTierService) -> None:
    service.decide_and_reserve(CALLER, 40, "req-1")
    service.record_grant(CALLER.pubkey, "req-1", 40, 40)
    with pytest.raises(Conflict) as refused:
        service.decide_and_reserve(CALLER, 40, "req-1")
    assert refused.value.code == "request_already_settled"
    with pytest.raises(Conflict):
        service.reserve_partial_grant(CALLER, "req-1", 40)
    assert service.pool_status().balance_sats == 960


def test_a_request_id_whose_hold_expired_is_not_handed_out_again(service: FreeTierService, clock: FixedClock) -> None:
    service.decide_and_reserve(CALLER, 40, "req-1")
    clock.advance(service.settings.reservation_ttl_seconds + 1)
    assert service.sweep().voided == 1
    with pytest.raises(Conflict):
        service.decide_and_reserve(CALLER, 40, "req-1")
    assert service.pool_status().reserved_sats == 0


def test_a_retry_gets_its_pending_hold_only_for_at_least_what_it_holds(service: FreeTierService) -> None:
    partial = service.reserve_partial_grant(CALLER, "job-1", 30)
    assert partial is not None and partial.amount_sats == 30
    decision, again = service.decide_and_reserve(CALLER, 100, "job-1")
    assert again == partial and (decision.serve, decision.absorb_sats, decision.charge_sats) == ("partial", 30, 70)
    assert service.reserve_partial_grant(CALLER, "job-1", 30) == partial
    with pytest.raises(AlreadyApplied):
        service.decide_and_reserve(CALLER, 10, "job-1")  # would be a negative charge
    with pytest.raises(AlreadyApplied):
        service.reserve_partial_grant(CALLER, "job-1", 5)
    assert service.pool_status().reserved_sats == 30
