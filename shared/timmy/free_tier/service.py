"""FreeTierService: the generosity pool, per-identity daily budgets, reservations and grants.

The earlier version's operations (`decide`, `reserve_partial_grant`, `release_reservation`,
`record_grant`, `credit`, `pool_status`) on the ledger. The pool and an identity's daily budget
are only ever debited together, in one transaction whose conditions re-check both limits:

- reserve: pending transfer pool → revenue, pool `available_sats >= amount`, the identity's day
  counter `used_sats <= budget − amount`;
- settle (`record_grant`): post the hold for the actual amount ≤ reserved (the rest returns to
  the pool and to the budget), the grant audit row and the day's pool statistics, all at once;
- release / sweep: void the hold, returning pool and budget.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from timmy.clock import Clock, iso, utc_day
from timmy.config import TIERS, Settings, Tier
from timmy.errors import AlreadyApplied, Conflict, InvalidInput, NotFound, Unprocessable
from timmy.free_tier.decision import Decision, Serve, decide_from, remaining_budget_sats, subsidisable
from timmy.identity.caller import Caller
from timmy.ledger.ledger import TRANSFER_ID_LENGTH_MAX, Batch, ConditionFailed, Ledger, Limit, decimal_seconds
from timmy.ledger.model import (
    OPERATOR_EQUITY,
    OPERATOR_REVENUE,
    POOL,
    Account,
    Transfer,
    TransferCode,
    TransferState,
    account_key,
    require_sats,
    transfer_key,
)
from timmy.pubkey import PUBKEY_HEX_LENGTH, canonical_pubkey

RESERVE_ATTEMPTS_MAX = 4  # decide again on fresh data at most this often after a lost race
SWEEP_PAGE_SIZE = 100
SWEEP_PAGES_MAX = 20  # 2,000 holds per run, well inside the sweeper's timeout
POOL_SEED_TRANSFER_ID = "pool-seed"
SUBSIDY_PREFIX = "subsidy:"
# The longest request hash whose hold id still fits a transfer id (the pubkey has a fixed length).
REQUEST_HASH_LENGTH_MAX = TRANSFER_ID_LENGTH_MAX - len(SUBSIDY_PREFIX) - PUBKEY_HEX_LENGTH - 1


def budget_day_key(pubkey: str, day: str) -> tuple[str, str]:
    return f"IDENTITY#{pubkey}", f"DAY#{day}"


def pool_stats_key(day: str) -> tuple[str, str]:
    return f"POOLSTATS#{day}", "STATS"


def grants_partition(day: str) -> str:
    return f"GRANTS#{day}"


def subsidy_transfer_id(pubkey: str, request_hash: str) -> str:
    """The one subsidy hold a request can have: reserving twice is a replay, not a second hold.

    The pubkey is canonical (exactly 64 hex digits), so the first separator is always at the same
    place: no pubkey and request hash can spell another pair's id.
    """
    if not isinstance(request_hash, str) or not request_hash or len(request_hash) > REQUEST_HASH_LENGTH_MAX:
        raise InvalidInput(f"a request hash has 1 to {REQUEST_HASH_LENGTH_MAX} characters")
    return f"{SUBSIDY_PREFIX}{canonical_pubkey(pubkey)}:{request_hash}"


def _caller(caller: Caller | None) -> Caller | None:
    """The caller with its pubkey canonical and its tier known, or InvalidInput."""
    if caller is None:
        return None
    pubkey = canonical_pubkey(caller.pubkey)
    if caller.tier not in TIERS:
        raise InvalidInput(f"{caller.tier!r} is not a tier")
    return caller if pubkey == caller.pubkey else Caller(pubkey, caller.tier, caller.blocked)


@dataclass(frozen=True)
class Reservation:
    """A subsidy hold on the pool and on one identity's budget for one UTC day."""

    transfer_id: str
    pubkey: str
    request_hash: str
    amount_sats: int
    day: str
    tier: str
    expires_at: float
    reserved_at: float = 0.0  # when the hold was made, to the millisecond (0: unknown, settle by reading it)

    @classmethod
    def from_transfer(cls, transfer: Transfer) -> Reservation:
        return cls(
            transfer.transfer_id,
            transfer.meta["pubkey"],
            transfer.meta["request_hash"],
            transfer.amount_sats,
            transfer.meta["day"],
            transfer.meta["tier"],
            transfer.expires_at or 0.0,
            float(decimal_seconds(transfer.created_at)),
        )

    def as_item(self) -> dict[str, Any]:
        """The reservation as its owner stores it (a job's row), to settle it later without a read."""
        return {
            "transfer_id": self.transfer_id,
            "pubkey": self.pubkey,
            "request_hash": self.request_hash,
            "amount_sats": self.amount_sats,
            "day": self.day,
            "tier": self.tier,
            "expires_at": decimal_seconds(self.expires_at),
            "reserved_at": decimal_seconds(self.reserved_at),
        }

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> Reservation:
        return cls(
            str(item["transfer_id"]),
            str(item["pubkey"]),
            str(item["request_hash"]),
            int(item["amount_sats"]),
            str(item["day"]),
            str(item["tier"]),
            float(item["expires_at"]),
            float(item["reserved_at"]),
        )

    def hold(self) -> Transfer:
        """The pending transfer this reservation stands for, as it was written."""
        meta = {"pubkey": self.pubkey, "request_hash": self.request_hash, "tier": self.tier, "day": self.day}
        return Transfer(
            self.transfer_id,
            POOL,
            OPERATOR_REVENUE,
            self.amount_sats,
            TransferCode.SUBSIDY,
            TransferState.PENDING,
            self.reserved_at,
            meta=meta,
        )

    def expected(self) -> dict[str, Any]:
        """What the stored hold must say for a settlement that did not read it to be this one's."""
        return {
            "debit_account_id": POOL,
            "credit_account_id": OPERATOR_REVENUE,
            "code": TransferCode.SUBSIDY.value,
            "day": self.day,
            "tier": self.tier,
            "created_at": decimal_seconds(self.reserved_at),
        }


@dataclass(frozen=True)
class Grant:
    """A settled subsidy: what was held, what the pool actually paid."""

    transfer_id: str
    pubkey: str
    request_hash: str
    reserved_sats: int
    absorbed_sats: int
    day: str


@dataclass(frozen=True)
class PoolStatus:
    """The generosity pool now: its balance, what open reservations hold, today's (UTC) grants and
    credits, and each tier's daily budget."""

    balance_sats: int  # posted
    available_sats: int  # balance less what open reservations hold
    reserved_sats: int
    absorbed_today_sats: int
    grants_today: int
    credited_today_sats: int
    daily_budgets: dict[str, int]


@dataclass
class SweepReport:
    """What one sweep did: holds voided, holds already resolved (a lagging index), holds whose void
    failed this time (left for the next run)."""

    voided: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BudgetUsage:
    day: str
    budget_sats: int
    absorbed_sats: int
    reserved_sats: int
    remaining_sats: int


class FreeTierService:
    def __init__(self, ledger: Ledger, settings: Settings, clock: Clock):
        self.ledger = ledger
        self.settings = settings
        self.clock = clock
        self._seeded = False

    # --- the pool ----------------------------------------------------------------------

    def ensure_seeded(self) -> None:
        """Seed the pool from operator equity once, ever: the seed transfer's id makes every
        later attempt (another cold start, a changed POOL_SEED_SATS) a no-op."""
        if self._seeded:
            return
        batch = self.ledger.batch()
        batch.transfer(POOL_SEED_TRANSFER_ID, OPERATOR_EQUITY, POOL, self.settings.pool_seed_sats, TransferCode.POOL_SEED)
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if not failed.lost(Limit.TRANSFER_EXISTS, POOL_SEED_TRANSFER_ID):
                raise
        self._seeded = True

    def pool_status(self) -> PoolStatus:
        day = utc_day(self.clock.now())
        return self._pool_status(self._read_seeded([account_key(POOL), pool_stats_key(day)]), day)

    def outlook(self, caller: Caller | None, estimated_sats: int) -> tuple[Decision, PoolStatus]:
        """The advisory decision and the pool in one round trip (the estimate route). Debits nothing."""
        caller = _caller(caller)
        require_sats(estimated_sats, "an estimate")
        day = utc_day(self.clock.now())
        keys = [account_key(POOL), pool_stats_key(day)]
        if subsidisable(caller):
            keys.append(budget_day_key(caller.pubkey, day))
        items = self._read_seeded(keys)
        status = self._pool_status(items, day)
        if not subsidisable(caller):
            return decide_from(caller, estimated_sats, 0, 0, 0), status
        used = items.get(keys[2], {}).get("used_sats", 0)
        return decide_from(caller, estimated_sats, self.settings.daily_budget_sats(caller.tier), used, status.available_sats), status

    def _pool_status(self, items: dict[tuple[str, str], dict[str, Any]], day: str) -> PoolStatus:
        pool = self._pool(items)
        stats = items.get(pool_stats_key(day), {})
        return PoolStatus(
            balance_sats=pool.posted_balance_sats,
            available_sats=pool.available_sats,
            reserved_sats=pool.debits_pending,
            absorbed_today_sats=stats.get("absorbed_sats", 0),
            grants_today=stats.get("grants", 0),
            credited_today_sats=stats.get("credited_sats", 0),
            daily_budgets=self.settings.daily_budgets(),
        )

    def topup(self, amount_sats: int, note: str = "", *, transfer_id: str) -> Transfer:
        """An operator donation from equity to the pool, idempotent by `transfer_id` (required: a
        retry after a lost answer must name the same transfer, or it would book twice)."""
        require_sats(amount_sats, "a top-up", minimum=1)
        if not isinstance(transfer_id, str) or not transfer_id:
            raise InvalidInput("a top-up names its transfer id")
        self.ensure_seeded()
        return self.ledger.create_transfer(transfer_id, OPERATOR_EQUITY, POOL, amount_sats, TransferCode.POOL_TOPUP, note=note)

    def add_credit(self, batch: Batch, paid_sats: int, charge_transfer_id: str) -> Transfer | None:
        """Add the pool's share (POOL_CREDIT_PCT of `paid_sats`, floor) to the batch that books
        the charge, as transfer `credit:<charge transfer id>`; None when the share is 0 sats."""
        require_sats(paid_sats, "a paid charge")
        amount = paid_sats * self.settings.pool_credit_pct // 100
        if amount <= 0:
            return None
        _count_pool_stats(batch, utc_day(batch.now), credited_sats=amount)
        return batch.transfer(
            f"credit:{charge_transfer_id}", OPERATOR_REVENUE, POOL, amount, TransferCode.POOL_CREDIT, source_transfer_id=charge_transfer_id
        )

    def credit(self, paid_sats: int, charge_transfer_id: str) -> int:
        """`add_credit` committed on its own, idempotent by the charge's transfer id; answers the sats credited."""
        self.ensure_seeded()
        batch = self.ledger.batch()
        transfer = self.add_credit(batch, paid_sats, charge_transfer_id)
        return self.ledger.commit_transfer(batch, transfer).amount_sats if transfer else 0

    # --- decisions and holds -------------------------------------------------------------

    def decide(self, caller: Caller | None, estimated_sats: int) -> Decision:
        """The advisory decision (contract section 3): debits nothing. An anonymous or blocked
        caller is gated whatever the pool holds, so only the others' decisions read it."""
        checked = _caller(caller)
        if not subsidisable(checked):
            require_sats(estimated_sats, "an estimate")
            return decide_from(checked, estimated_sats, 0, 0, 0)
        return self.outlook(checked, estimated_sats)[0]

    def decide_and_reserve(
        self, caller: Caller | None, estimated_sats: int, request_hash: str, *, unread: bool = True
    ) -> tuple[Decision, Reservation | None]:
        """Decide, and when the answer is free reserve pool and budget atomically at once.

        A lost race (a condition failed) decides again on fresh data, at most
        RESERVE_ATTEMPTS_MAX times; the answer may drop to partial or gate, never overdraw.
        A retry of a request whose hold is still pending gets that hold back (see `_replayed_hold`),
        and so does a concurrent twin that lost to it: the answer is always what is held.
        `unread=False` skips the first, unread attempt (the caller's own transaction just made it).
        """
        caller = _caller(caller)
        require_sats(estimated_sats, "an estimate to reserve", minimum=1)
        if unread and (optimistic := self._reserve_optimistically(caller, request_hash, estimated_sats)) is not None:
            held_now, replayed_now = optimistic
            if replayed_now:
                return self._held_decision(held_now, estimated_sats)
            assert caller is not None
            budget = self.settings.daily_budget_sats(caller.tier)
            return decide_from(caller, estimated_sats, budget, 0, estimated_sats), held_now
        for _attempt in range(RESERVE_ATTEMPTS_MAX):
            decision, held = self._decide(caller, estimated_sats, request_hash)
            if held is not None:
                return self._held_decision(self._replayed_hold(held, estimated_sats), estimated_sats)
            if decision.serve != "free":
                return decision, None
            assert caller is not None
            reservation, replayed = self._try_reserve(caller, request_hash, decision.absorb_sats, estimated_sats)
            if replayed:
                assert reservation is not None
                return self._held_decision(reservation, estimated_sats)
            if reservation is not None:
                return decision, reservation
        tier = caller.tier if caller else "new"
        return Decision("gate", 0, estimated_sats, tier, "the pool is busy; pay now or retry"), None

    def reserve_partial_grant(self, caller: Caller, request_hash: str, amount_sats: int) -> Reservation | None:
        """Reserve up to `amount_sats` for a partial grant at payment time; answers the hold
        (perhaps smaller: the caller asks for the shortfall) or None when nothing is left."""
        checked = _caller(caller)
        assert checked is not None
        caller = checked
        require_sats(amount_sats, "a partial grant", minimum=1)
        if (optimistic := self._reserve_optimistically(caller, request_hash, amount_sats)) is not None:
            return optimistic[0]
        for _attempt in range(RESERVE_ATTEMPTS_MAX):
            decision, held = self._decide(caller, amount_sats, request_hash)
            if held is not None:
                return self._replayed_hold(held, amount_sats)
            if decision.absorb_sats == 0:
                return None
            reservation, _replayed = self._try_reserve(caller, request_hash, decision.absorb_sats, amount_sats)
            if reservation is not None:
                return reservation
        return None

    def _reserve_optimistically(self, caller: Caller | None, request_hash: str, amount_sats: int) -> tuple[Reservation, bool] | None:
        """The happy path in one round trip: hold all of `amount_sats` without reading first.

        The transaction's own conditions are the decision: the pool's `available_sats >= amount`
        and the day counter's `used_sats <= budget − amount` are exactly "the pool and today's
        budget cover it" (free), and the hold's `attribute_not_exists` tells a replay or a twin.
        Answers (the hold, whether it was there already), or None when a limit refused it (or it
        cannot be free, or this is a cold start's first call, which reads to find the seed): then
        decide on what is read, as before.
        """
        if not self._seeded or not subsidisable(caller):
            return None
        if not 0 < amount_sats <= self.settings.daily_budget_sats(caller.tier):
            return None
        reservation, replayed = self._try_reserve(caller, request_hash, amount_sats, amount_sats)
        return None if reservation is None else (reservation, replayed)

    @staticmethod
    def _held_decision(held: Reservation, estimated_sats: int) -> tuple[Decision, Reservation]:
        """The decision a request's existing hold stands for: free when it covers the estimate."""
        serve: Serve = "free" if held.amount_sats == estimated_sats else "partial"
        return Decision(serve, held.amount_sats, estimated_sats - held.amount_sats, held.tier, "already reserved"), held  # type: ignore[arg-type]

    @staticmethod
    def _replayed_hold(held: Transfer, amount_sats_max: int) -> Reservation:
        """A request id holds once: a retry while its hold is pending gets the same hold back.

        A hold already settled or voided is never handed out again (the work was paid for, or its
        reservation expired): the caller must use a new request id.
        """
        if held.state is not TransferState.PENDING:
            raise Conflict(
                f"request {held.meta['request_hash']} was already settled or expired; use a new request id", code="request_already_settled"
            )
        if held.amount_sats > amount_sats_max:
            raise AlreadyApplied(
                f"request {held.meta['request_hash']} already holds {held.amount_sats} sats, more than the {amount_sats_max} asked now"
            )
        return Reservation.from_transfer(held)

    def _decide(self, caller: Caller | None, estimated_sats: int, request_hash: str) -> tuple[Decision, Transfer | None]:
        """One round trip: the pool, the caller's day counter, and the request's hold if it has one
        already (a retry after a lost answer gets that hold back instead of a second one)."""
        if not subsidisable(caller):
            return decide_from(caller, estimated_sats, 0, 0, 0), None
        day = utc_day(self.clock.now())
        budget = self.settings.daily_budget_sats(caller.tier)
        day_key, hold_key = budget_day_key(caller.pubkey, day), transfer_key(subsidy_transfer_id(caller.pubkey, request_hash))
        items = self._read_seeded([account_key(POOL), day_key, hold_key])
        if (held := items.get(hold_key)) is not None:
            return decide_from(caller, estimated_sats, budget, 0, 0), Transfer.from_item(held)
        used = items.get(day_key, {}).get("used_sats", 0)
        return decide_from(caller, estimated_sats, budget, used, self._pool(items).available_sats), None

    def _try_reserve(self, caller: Caller, request_hash: str, amount_sats: int, asked_sats: int) -> tuple[Reservation | None, bool]:
        """One attempt at the atomic hold: (the hold, whether a twin of this request made it);
        (None, False) when a limit moved under us (decide again)."""
        batch = self.ledger.batch()
        reservation = self._add_hold(batch, caller, request_hash, amount_sats)
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if failed.lost(Limit.TRANSFER_EXISTS, reservation.transfer_id):  # a concurrent twin of this request won
                return self._replayed_hold(self.ledger.require_transfer(reservation.transfer_id), asked_sats), True
            return None, False
        return reservation, False

    def _add_hold(self, batch: Batch, caller: Caller, request_hash: str, amount_sats: int) -> Reservation:
        """Add the subsidy hold and its budget share to `batch`, under the two limits (the pool's
        available balance, the day's budget); answers the reservation it makes once committed."""
        day = utc_day(batch.now)
        budget = self.settings.daily_budget_sats(caller.tier)
        transfer = batch.reserve(
            subsidy_transfer_id(caller.pubkey, request_hash),
            POOL,
            OPERATOR_REVENUE,
            amount_sats,
            TransferCode.SUBSIDY,
            expires_at=batch.now + self.settings.reservation_ttl_seconds,
            pubkey=caller.pubkey,
            request_hash=request_hash,
            tier=caller.tier,
            day=day,
            budget_sats=budget,
        )
        _move_budget(batch, caller.pubkey, day, reserved=amount_sats, absorbed=0, budget_sats=budget)
        return Reservation.from_transfer(transfer)

    def add_free_reservation(
        self, batch: Batch, caller: Caller | None, estimated_sats: int, request_hash: str
    ) -> tuple[Decision, Reservation] | None:
        """`decide_and_reserve`'s happy path inside the caller's own transaction (a session request's
        active check): the hold of all of `estimated_sats` added to `batch`, unread. Its conditions
        are the free decision (pool available, today's budget), checked when `batch` commits, so
        nothing is decided on a stale read. Answers the free decision and the reservation `batch`
        makes once committed, or None when it cannot be tried unread (`_reserve_optimistically`'s
        rule): then `decide_and_reserve`. When the commit is refused for the hold
        (`refused_reservation`) nothing was written: `decide_and_reserve(..., unread=False)`
        decides on what it reads (partial or gate, or a twin's hold), as after any lost race."""
        checked = _caller(caller)
        require_sats(estimated_sats, "an estimate to reserve", minimum=1)
        if not self._seeded or not subsidisable(checked):
            return None
        budget = self.settings.daily_budget_sats(checked.tier)
        if not 0 < estimated_sats <= budget:
            return None
        reservation = self._add_hold(batch, checked, request_hash, estimated_sats)
        return decide_from(checked, estimated_sats, budget, 0, estimated_sats), reservation

    @staticmethod
    def refused_reservation(failed: ConditionFailed, reservation: Reservation) -> bool:
        """Whether a refused commit was refused (also) for the hold `add_free_reservation` added: the
        pool, today's budget, or the request's hold already there."""
        return (
            failed.lost(Limit.TRANSFER_EXISTS, reservation.transfer_id)
            or failed.lost(Limit.OVERDRAFT, POOL)
            or failed.lost(Limit.BOUND, f"{reservation.pubkey}:{reservation.day}")
        )

    # --- settling holds ------------------------------------------------------------------

    def record_grant(
        self,
        pubkey: str,
        request_hash: str,
        actual_absorbed: int,
        reserved_absorbed: int,
        paid_for: str = "",
        *,
        reservation: Reservation | None = None,
    ) -> Grant:
        """Post the hold for `actual_absorbed` ≤ `reserved_absorbed`; the rest returns to the pool
        and the day's budget in the same transaction, with the grant audit row (actual amount).

        Idempotent: a replay returns the first grant. Absorbing 0 releases the hold (a replay, or a
        hold the sweeper voided meanwhile, answers the same 0-sat grant).

        With the `reservation` that `decide_and_reserve` (or `reserve_partial_grant`) answered, the
        hold is settled without reading it first (one round trip): the transaction's conditions
        check that the stored hold is that one and still pending. Any refusal (a replay, a hold
        swept or settled meanwhile, a reservation that is not this hold's) is answered by reading,
        exactly as without it.
        """
        require_sats(actual_absorbed, "the absorbed amount")
        require_sats(reserved_absorbed, "the reserved amount")
        transfer_id = subsidy_transfer_id(canonical_pubkey(pubkey), request_hash)
        if reservation is not None and reservation.reserved_at and reservation.transfer_id == transfer_id:
            if reservation.amount_sats != reserved_absorbed:
                raise InvalidInput(f"the reservation holds {reservation.amount_sats} sats, not {reserved_absorbed}")
            if not 0 <= actual_absorbed <= reserved_absorbed:
                raise InvalidInput(f"the absorbed amount must be between 0 and the {reserved_absorbed} sats reserved")
            hold = reservation.hold()
            try:
                if actual_absorbed == 0:
                    if self._release(hold, expect=reservation.expected()):
                        return self._grant(hold, 0)
                else:
                    self.ledger.commit(self._settlement(hold, actual_absorbed, None, paid_for, expect=reservation.expected()))
                    return self._grant(hold, actual_absorbed)
            except ConditionFailed:
                pass  # resolved meanwhile, or not this hold: read it and answer as below
        items = self.ledger.read([transfer_key(transfer_id), account_key(POOL)])
        if transfer_key(transfer_id) not in items:
            raise NotFound(f"no reservation for request {request_hash}", code="reservation_not_found")
        hold = Transfer.from_item(items[transfer_key(transfer_id)])
        if hold.amount_sats != reserved_absorbed:
            raise InvalidInput(f"the reservation holds {hold.amount_sats} sats, not {reserved_absorbed}")
        if not 0 <= actual_absorbed <= reserved_absorbed:
            raise InvalidInput(f"the absorbed amount must be between 0 and the {reserved_absorbed} sats reserved")
        if hold.state is not TransferState.PENDING:
            return self._settled(hold, actual_absorbed)
        if actual_absorbed == 0:
            if not self._release(hold):  # resolved meanwhile: answer what happened to it
                return self._settled(self.ledger.require_transfer(transfer_id), 0)
            return self._grant(hold, 0)
        pool_after = self._pool(items).posted_balance_sats - actual_absorbed
        try:
            self.ledger.commit(self._settlement(hold, actual_absorbed, pool_after, paid_for))
        except ConditionFailed:
            # Another settlement (or the sweeper) resolved the hold first: answer what it did.
            return self._settled(self.ledger.require_transfer(transfer_id), actual_absorbed)
        return self._grant(hold, actual_absorbed)

    def add_grant(self, batch: Batch, reservation: Reservation, actual_absorbed: int, paid_for: str = "") -> None:
        """Add the settlement of `reservation` for `actual_absorbed` sats (1 … reserved) to `batch`,
        the caller's transaction (a job's charge and completion), without reading the hold. Its
        conditions refuse the whole transaction when the stored hold is not this one or no longer
        pending (a replay, a sweep): the caller then settles with `record_grant`, which reads and
        answers what happened."""
        if not 0 < actual_absorbed <= reservation.amount_sats:
            raise InvalidInput(f"the absorbed amount must be between 1 and the {reservation.amount_sats} sats reserved")
        self._add_settlement(batch, reservation.hold(), actual_absorbed, None, paid_for, expect=reservation.expected())

    def _settlement(
        self, hold: Transfer, actual_absorbed: int, pool_after: int | None, paid_for: str, expect: dict[str, Any] | None = None
    ) -> Batch:
        """The batch that settles a hold: post it, move the budget back, the grant row, the stats."""
        batch = self.ledger.batch()
        self._add_settlement(batch, hold, actual_absorbed, pool_after, paid_for, expect)
        return batch

    def _add_settlement(
        self, batch: Batch, hold: Transfer, actual_absorbed: int, pool_after: int | None, paid_for: str, expect: dict[str, Any] | None
    ) -> None:
        batch.post(hold, actual_absorbed, expect=expect)
        # The hold's own identity and day, never the caller's say.
        holder, day = hold.meta["pubkey"], hold.meta["day"]
        _move_budget(batch, holder, day, reserved=-hold.amount_sats, absorbed=actual_absorbed)
        # Immutable: written once, in the transaction that posts the hold.
        batch.put_once(hold.transfer_id, self._grant_row(hold, actual_absorbed, pool_after, paid_for, batch.now))
        _count_pool_stats(batch, day, absorbed_sats=actual_absorbed, grants=1)

    def release_reservation(self, pubkey: str, request_hash: str) -> None:
        """Void the hold of work that failed: pool and budget get all of it back. Idempotent; a
        grant that won the race (before or during this call) is `reservation_settled`."""
        transfer_id = subsidy_transfer_id(canonical_pubkey(pubkey), request_hash)
        hold = self.ledger.require_transfer(transfer_id)
        if hold.state is TransferState.PENDING and not self._release(hold):
            hold = self.ledger.require_transfer(transfer_id)  # resolved meanwhile: by what?
        if hold.state is TransferState.POSTED:
            raise Conflict("the reservation was already settled by a grant", code="reservation_settled")

    def sweep(self, page_size: int = SWEEP_PAGE_SIZE, pages_max: int = SWEEP_PAGES_MAX) -> SweepReport:
        """Void holds past their expiry (a crashed worker strands nothing).

        Pages through the pending index by key, so holds the lagging index still lists after they
        were settled are stepped over, not re-read. A hold whose void fails (a lost answer, a busy
        ledger) is counted and left for the next run; it does not stop the sweep.
        """
        report = SweepReport()
        for hold in self.ledger.expired_holds(self.clock.now(), page_size, pages_max):
            try:
                voided = self._release(hold)
            except Exception as error:  # one hold's failure must not strand the rest
                report.failed.append(f"{hold.transfer_id}: {type(error).__name__}")
                continue
            if voided:
                report.voided += 1
            else:
                report.skipped += 1
        return report

    def _release(self, hold: Transfer, expect: dict[str, Any] | None = None) -> bool:
        """Void one hold (and its budget share, for subsidies); False when it was already resolved
        (or, with `expect`, is not the hold expected)."""
        batch = self.ledger.batch()
        batch.void(hold, expect=expect)
        if hold.code == TransferCode.SUBSIDY:
            pubkey, day = hold.meta["pubkey"], hold.meta["day"]
            _move_budget(batch, pubkey, day, reserved=-hold.amount_sats, absorbed=0)
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if failed.lost(Limit.HOLD_RESOLVED, hold.transfer_id):
                return False
            raise
        return True

    def _settled(self, hold: Transfer, actual_absorbed: int) -> Grant:
        if hold.state is TransferState.VOIDED and actual_absorbed == 0:
            return self._grant(hold, 0)  # nothing absorbed either way: the same answer as the first time
        if hold.state is TransferState.VOIDED:
            raise Conflict("the reservation expired or was released before it was settled", code="reservation_voided")
        if hold.effective_posted_sats != actual_absorbed:
            raise AlreadyApplied(f"the grant was recorded for {hold.effective_posted_sats} sats, not {actual_absorbed}")
        return self._grant(hold, actual_absorbed)

    @staticmethod
    def _grant(hold: Transfer, absorbed: int) -> Grant:
        return Grant(hold.transfer_id, hold.meta["pubkey"], hold.meta["request_hash"], hold.amount_sats, absorbed, hold.meta["day"])

    @staticmethod
    def _grant_row(hold: Transfer, absorbed: int, pool_after: int | None, paid_for: str, now: float) -> dict[str, Any]:
        day = hold.meta["day"]
        item = {
            "pk": grants_partition(day),
            "sk": f"{iso(hold.created_at)}#{hold.transfer_id}",
            "type": "grant",
            "transfer_id": hold.transfer_id,
            "pubkey": hold.meta["pubkey"],
            "request_hash": hold.meta["request_hash"],
            "tier": hold.meta["tier"],
            "reserved_sats": hold.amount_sats,
            "absorbed_sats": absorbed,
            "paid_for": paid_for,
            "day": day,
            "reserved_at": iso(hold.created_at),
            "granted_at": iso(now),
        }
        if pool_after is not None:  # known only when the settlement read the pool (not on the one-round-trip path)
            item["pool_balance_after_sats"] = pool_after
        return item

    # --- reads for the routes ------------------------------------------------------------

    def usage_today(self, pubkey: str, tier: Tier, *, blocked: bool = False) -> BudgetUsage:
        """Today's budget of one identity; a blocked identity has none left."""
        pubkey = canonical_pubkey(pubkey)
        day = utc_day(self.clock.now())
        item = self.ledger.item(budget_day_key(pubkey, day)) or {}
        budget = self.settings.daily_budget_sats(tier)
        absorbed, reserved = item.get("absorbed_sats", 0), item.get("reserved_sats", 0)
        return BudgetUsage(day, budget, absorbed, reserved, remaining_budget_sats(budget, absorbed + reserved, blocked))

    def grants(self, day: str | None, limit: int = 100, cursor: str | None = None) -> dict[str, Any]:
        """One page of a day's grant rows, oldest first; `next_cursor` continues."""
        day = day or utc_day(self.clock.now())
        start = _decode_cursor(cursor, grants_partition(day)) if cursor else None
        items, last = self.ledger.page(grants_partition(day), limit, start)
        rows = [{k: v for k, v in item.items() if k not in ("pk", "sk", "type")} for item in items]
        return {"day": day, "grants": rows, "next_cursor": _encode_cursor(last) if last else None}

    # --- helpers -------------------------------------------------------------------------

    def _read_seeded(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Read `keys`; the first read of a cold start also looks for the seed transfer (not the
        pool account, which a credit may have created first) and seeds the pool if it is missing."""
        if self._seeded:
            return self.ledger.read(keys)
        seed_key = transfer_key(POOL_SEED_TRANSFER_ID)
        items = self.ledger.read([*keys, seed_key])
        if items.pop(seed_key, None) is None:
            self.ensure_seeded()
            return self.ledger.read(keys)
        self._seeded = True
        return items

    @staticmethod
    def _pool(items: dict[tuple[str, str], dict[str, Any]]) -> Account:
        return Account.from_item(items.get(account_key(POOL)), POOL)


def _move_budget(batch: Batch, pubkey: str, day: str, *, reserved: int, absorbed: int, budget_sats: int | None = None) -> None:
    """Move an identity's day counter; `used_sats` stays absorbed + reserved.

    With `budget_sats` (a new reservation) the daily budget bounds `used_sats`, next to the debit
    it guards, for the day's first hold too; settling or releasing only moves an existing counter.
    """
    attributes = None if budget_sats is None else {"budget_sats": budget_sats, "pubkey": pubkey, "day": day, "type": "budget_day"}
    batch.bounded_counter(
        f"{pubkey}:{day}",
        budget_day_key(pubkey, day),
        # `version` counts the counter's updates: the live audit tells a quiet counter by it.
        {"reserved_sats": reserved, "absorbed_sats": absorbed, "used_sats": reserved + absorbed, "version": 1},
        bound=None if budget_sats is None else ("used_sats", budget_sats),
        attributes=attributes,
    )


def _count_pool_stats(batch: Batch, day: str, **deltas: int) -> None:
    """The day's pool statistics (absorbed, grants, credited), in the batch that moves the sats."""
    batch.count(pool_stats_key(day), {"type": "pool_stats", "day": day}, **deltas)


def _encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode()


def _decode_cursor(cursor: str, partition: str) -> dict[str, Any]:
    """The key a page continues from; only a key of the partition being read (`partition`)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(key, dict) or set(key) != {"pk", "sk"} or key["pk"] != partition or not isinstance(key["sk"], str):
            raise ValueError
        return key
    except (ValueError, TypeError):
        raise Unprocessable("'cursor' is not a cursor this route gave out for this day", code="invalid_cursor") from None
