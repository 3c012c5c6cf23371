"""Races on DynamoDB Local: many threads against one pool and many daily budgets."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.config import TIERS, Settings
from timmy.free_tier.service import FreeTierService
from timmy.identity.caller import Caller
from timmy.ledger.invariants import audit_store
from timmy.ledger.ledger import Ledger

THREADS = 64
IDENTITIES = 200
REQUESTS = 2_000
POOL_SATS = 2_000


@pytest.mark.slow
def test_many_identities_racing_never_overdraw_pool_or_budgets(store: DynamoStore, clock: FixedClock) -> None:
    settings = Settings(pool_seed_sats=POOL_SATS)
    free_tier = FreeTierService(Ledger(store, clock), settings, clock)
    free_tier.ensure_seeded()
    rng = random.Random(7)
    callers = [Caller(f"{i:064x}", rng.choice(TIERS)) for i in range(IDENTITIES)]
    plan = [(rng.choice(callers), rng.randint(1, 60), rng.random(), rng.random()) for _ in range(REQUESTS)]

    def one_request(index: int) -> tuple[str, int]:
        caller, estimate, fail_roll, actual_roll = plan[index]
        decision, reservation = free_tier.decide_and_reserve(caller, estimate, f"req-{index}")
        if reservation is None:
            return decision.serve, 0
        if fail_roll < 0.15:  # the work failed
            free_tier.release_reservation(caller.pubkey, f"req-{index}")
            return "failed", 0
        actual = int(reservation.amount_sats * actual_roll)
        grant = free_tier.record_grant(caller.pubkey, f"req-{index}", actual, reservation.amount_sats)
        return "free", grant.absorbed_sats

    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(one_request, range(REQUESTS)))

    absorbed = sum(sats for _, sats in outcomes)
    status = free_tier.pool_status()
    assert status.balance_sats == POOL_SATS - absorbed >= 0
    assert status.available_sats == status.balance_sats and status.reserved_sats == 0
    served = {serve for serve, _ in outcomes}
    assert {"free", "gate", "failed"} <= served  # the run exercised every path
    for caller in callers:
        usage = free_tier.usage_today(caller.pubkey, caller.tier)
        assert usage.absorbed_sats + usage.reserved_sats <= settings.daily_budget_sats(caller.tier)
    assert absorbed > POOL_SATS // 2  # the pool really was fought over
    report = audit_store(store)
    assert report.ok, report.as_dict()


@pytest.mark.slow
def test_one_identity_firing_50_concurrent_requests_stays_within_its_budget(store: DynamoStore, clock: FixedClock) -> None:
    free_tier = FreeTierService(Ledger(store, clock), Settings(pool_seed_sats=100_000), clock)
    caller = Caller("9" * 64, "trusted")  # 200 sats a day

    def one_request(index: int) -> int:
        _, reservation = free_tier.decide_and_reserve(caller, 7, f"burst-{index}")
        return reservation.amount_sats if reservation else 0

    with ThreadPoolExecutor(50) as pool:
        reserved = list(pool.map(one_request, range(50)))
    assert sum(reserved) <= 200
    assert sum(reserved) == 196  # 28 requests of 7 fit; none more
    usage = free_tier.usage_today(caller.pubkey, "trusted")
    assert usage.reserved_sats == 196 and usage.remaining_sats == 4
