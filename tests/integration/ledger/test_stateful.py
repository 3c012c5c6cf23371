"""A hypothesis state machine drives random sequences of pool operations on DynamoDB Local and
compares the ledger with a plain in-memory model after every step."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from local.dynamodb import DynamoDBLocal
from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.free_tier.service import FreeTierService, Reservation
from timmy.identity.caller import Caller
from timmy.ledger.invariants import audit_store
from timmy.ledger.ledger import Ledger

CALLERS = [Caller("1" * 64, "established"), Caller("2" * 64, "trusted"), Caller("3" * 64, "elite"), Caller("4" * 64, "new")]
SEED_SATS = 400
TTL_SECONDS = 600
_server: DynamoDBLocal | None = None


@pytest.fixture(autouse=True)
def _dynamodb(dynamodb_local: DynamoDBLocal) -> None:
    global _server
    _server = dynamodb_local


@dataclass
class Model:
    """What the ledger should hold: the pool, each caller's day, the open holds."""

    seeded: bool = False
    pool_posted: int = 0
    holds: dict[str, tuple[Caller, int]] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)  # what the service answered for each hold
    absorbed: dict[str, int] = field(default_factory=dict)

    @property
    def pool_reserved(self) -> int:
        return sum(amount for _, amount in self.holds.values())

    def reserved_by(self, caller: Caller) -> int:
        return sum(amount for c, amount in self.holds.values() if c == caller)

    def absorbable(self, caller: Caller, estimate: int, settings: Settings) -> int:
        used = self.absorbed.get(caller.pubkey, 0) + self.reserved_by(caller)
        return max(0, min(estimate, settings.daily_budget_sats(caller.tier) - used, self.pool_posted - self.pool_reserved))


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        assert _server is not None
        name = f"timmy-sm-{uuid.uuid4().hex[:10]}"
        _server.create_table(name)
        self.store = DynamoStore(name, client=_server.client())
        self.clock = FixedClock()
        self.settings = Settings(pool_seed_sats=SEED_SATS, reservation_ttl_seconds=TTL_SECONDS)
        self.service = FreeTierService(Ledger(self.store, self.clock), self.settings, self.clock)
        self.model = Model()
        self.counter = 0

    def _next_request(self) -> str:
        self.counter += 1
        return f"req-{self.counter}"

    @initialize()
    def seed(self) -> None:
        self.service.ensure_seeded()
        self.model.seeded, self.model.pool_posted = True, SEED_SATS

    @rule(caller=st.sampled_from(CALLERS), estimate=st.integers(1, 300))
    def decide_and_reserve(self, caller: Caller, estimate: int) -> None:
        expected = self.model.absorbable(caller, estimate, self.settings)
        request = self._next_request()
        decision, reservation = self.service.decide_and_reserve(caller, estimate, request)
        if expected == estimate:
            assert decision.serve == "free" and reservation is not None and reservation.amount_sats == estimate
            self.model.holds[request] = (caller, estimate)
            self.model.reservations[request] = reservation
        else:
            assert reservation is None
            assert decision.serve == ("partial" if expected else "gate")
            assert (decision.absorb_sats, decision.charge_sats) == (expected, estimate - expected)

    @rule(caller=st.sampled_from(CALLERS[:3]), amount=st.integers(1, 300))
    def reserve_partial(self, caller: Caller, amount: int) -> None:
        expected = self.model.absorbable(caller, amount, self.settings)
        request = self._next_request()
        reservation = self.service.reserve_partial_grant(caller, request, amount)
        assert (reservation.amount_sats if reservation else 0) == expected
        if reservation is not None:
            self.model.holds[request] = (caller, expected)
            self.model.reservations[request] = reservation

    @rule(data=st.data())
    def record(self, data: st.DataObject) -> None:
        if not self.model.holds:
            return
        request = data.draw(st.sampled_from(sorted(self.model.holds)))
        caller, amount = self.model.holds.pop(request)
        actual = data.draw(st.integers(0, amount))
        in_hand = data.draw(st.booleans())  # settle with the reservation (no read) or by request hash
        reservation = self.model.reservations[request] if in_hand else None
        grant = self.service.record_grant(caller.pubkey, request, actual, amount, reservation=reservation)
        assert (grant.reserved_sats, grant.absorbed_sats) == (amount, actual)
        self.model.pool_posted -= actual
        self.model.absorbed[caller.pubkey] = self.model.absorbed.get(caller.pubkey, 0) + actual

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if not self.model.holds:
            return
        request = data.draw(st.sampled_from(sorted(self.model.holds)))
        caller, _ = self.model.holds.pop(request)
        self.service.release_reservation(caller.pubkey, request)

    @rule(paid=st.integers(0, 5_000))
    def credit(self, paid: int) -> None:
        expected = paid * 10 // 100  # POOL_CREDIT_PCT's default, rounded down
        assert self.service.credit(paid, self._next_request()) == expected
        self.model.pool_posted += expected

    @rule(amount=st.integers(1, 500))
    def topup(self, amount: int) -> None:
        self.service.topup(amount, "machine", transfer_id=self._next_request())
        self.model.pool_posted += amount

    @rule()
    def sweep(self) -> None:
        self.clock.advance(TTL_SECONDS + 1)
        assert self.service.sweep().voided == len(self.model.holds)
        self.model.holds.clear()

    @invariant()
    def ledger_matches_model(self) -> None:
        status = self.service.pool_status()
        assert status.balance_sats == self.model.pool_posted
        assert status.reserved_sats == self.model.pool_reserved
        assert status.available_sats == self.model.pool_posted - self.model.pool_reserved >= 0
        for caller in CALLERS:
            usage = self.service.usage_today(caller.pubkey, caller.tier)
            assert usage.absorbed_sats == self.model.absorbed.get(caller.pubkey, 0)
            assert usage.reserved_sats == self.model.reserved_by(caller)
        report = audit_store(self.store)
        assert report.ok, report.as_dict()


PoolMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck))
test_pool_matches_model = PoolMachine.TestCase
