"""The double-entry ledger on DynamoDB: every movement of sats is a transfer item written in the
same `TransactWriteItems` as the account updates, so a transfer and its balances never disagree.

A `Batch` collects transfers (single-phase, pending, post, void) and any extra actions a use case
needs in the same transaction (a daily-budget counter, a grant audit row). `Ledger.commit` merges
the account deltas (DynamoDB refuses an item twice in one transaction), adds the no-overdraft
conditions, and runs it with bounded, jittered retries on conflicts. Every failed condition is
reported by its label so the caller knows which limit stopped it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from timmy.clock import Clock, iso
from timmy.errors import AlreadyApplied, Conflict, InsufficientFunds, InvalidInput, LedgerConflict, NotFound, TransactionCancelled
from timmy.ledger.model import (
    PENDING_INDEX_PARTITION,
    Account,
    Transfer,
    TransferState,
    account_key,
    must_not_overdraw,
    require_sats,
    transfer_key,
)
from timmy.ports.store import PageQuery, Store

TRANSACTION_ACTIONS_MAX = 100  # DynamoDB's limit on one TransactWriteItems
CONFLICT_RETRIES_MAX = 6
CONFLICT_BACKOFF_SECONDS_BASE = 0.005
TRANSFER_ID_LENGTH_MAX = 200
# Cancellation reasons that a retry may clear (contention), besides None for the actions that were fine.
RETRYABLE_REASONS = frozenset({None, "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


class Limit(StrEnum):
    """What a failed condition of a transaction guarded."""

    TRANSFER_EXISTS = "transfer"  # the transfer id was applied before (a replay, or a twin won)
    HOLD_RESOLVED = "resolve"  # the hold was posted or voided meanwhile (or is not the one read)
    OVERDRAFT = "account"  # a no-overdraft account has not enough available
    BOUND = "counter"  # a bounded counter (a daily budget) has no room left
    ROW_EXISTS = "row"  # an immutable row was written before
    STATE = "state"  # a row (an invoice, a payout) was no longer in a state the change starts from


@dataclass(frozen=True)
class Refused:
    """One failed condition: which limit, and the id of what it guards (transfer, account, counter)."""

    limit: Limit
    id: str

    def __str__(self) -> str:
        return f"{self.limit.value}:{self.id}"


class ConditionFailed(Exception):
    """One or more conditions of a committed batch failed; `refused` says which, typed."""

    def __init__(self, refused: list[Refused]):
        super().__init__(f"conditions failed: {[str(r) for r in refused]}")
        self.refused = refused

    def lost(self, limit: Limit, id_: str) -> bool:
        """Whether the condition `limit` on `id_` is one that failed."""
        return Refused(limit, id_) in self.refused

    def ids(self, limit: Limit) -> list[str]:
        return [r.id for r in self.refused if r.limit is limit]


@dataclass
class Batch:
    """Transfers and extra actions that commit together or not at all."""

    now: float
    _actions: list[tuple[Refused, dict[str, Any]]] = field(default_factory=list)
    _deltas: dict[str, Account] = field(default_factory=dict)  # each account's change, as an Account
    _counters: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def _move(self, account_id: str, **changes: int) -> None:
        delta = self._deltas.get(account_id, Account(account_id))
        self._deltas[account_id] = replace(delta, **{name: getattr(delta, name) + change for name, change in changes.items()})

    def transfer(self, transfer_id: str, debit: str, credit: str, amount_sats: int, code: str, **meta: Any) -> Transfer:
        """A single-phase transfer, posted at once."""
        transfer = self._new(transfer_id, debit, credit, amount_sats, code, TransferState.POSTED, None, meta)
        self._move(debit, debits_posted=amount_sats)
        self._move(credit, credits_posted=amount_sats)
        return transfer

    def reserve(
        self, transfer_id: str, debit: str, credit: str, amount_sats: int, code: str, expires_at: float | None, **meta: Any
    ) -> Transfer:
        """A pending transfer: holds `amount_sats` of `debit` until posted or voided, or until it
        expires (the sweeper voids it). A hold without expiry (a payout in flight) is never swept:
        only its own use case resolves it."""
        transfer = self._new(transfer_id, debit, credit, amount_sats, code, TransferState.PENDING, expires_at, meta)
        self._move(debit, debits_pending=amount_sats)
        self._move(credit, credits_pending=amount_sats)
        return transfer

    def post(self, pending: Transfer, amount_sats: int, *, expect: Mapping[str, Any] | None = None) -> None:
        """Post a pending transfer for `amount_sats` ≤ its amount; the rest is released.

        `expect`: attributes the stored hold must have (refused as HOLD_RESOLVED otherwise), for
        a caller that settles a hold it did not read but holds a record of (no read needed)."""
        require_sats(amount_sats, "a posted amount")
        if not 0 <= amount_sats <= pending.amount_sats:
            raise InvalidInput(f"a pending transfer of {pending.amount_sats} sats cannot post {amount_sats}")
        self._resolve(pending, TransferState.POSTED, amount_sats, expect)
        self._move(pending.debit_account_id, debits_pending=-pending.amount_sats, debits_posted=amount_sats)
        self._move(pending.credit_account_id, credits_pending=-pending.amount_sats, credits_posted=amount_sats)

    def void(self, pending: Transfer, *, expect: Mapping[str, Any] | None = None) -> None:
        """Void a pending transfer: its whole amount goes back (`expect` as for `post`)."""
        self._resolve(pending, TransferState.VOIDED, None, expect)
        self._move(pending.debit_account_id, debits_pending=-pending.amount_sats)
        self._move(pending.credit_account_id, credits_pending=-pending.amount_sats)

    def _add(self, refused: Refused, action: dict[str, Any]) -> None:
        """An action of the same transaction; `refused` is what its failed condition reports."""
        self._actions.append((refused, action))

    def update(self, row_id: str, action: dict[str, Any]) -> None:
        """Another use case's ready-made `Update` action (e.g. an identity's paid history) in the
        same transaction; a failed condition of it is refused as ROW_EXISTS `row_id`."""
        self._add(Refused(Limit.ROW_EXISTS, row_id), action)

    def put_once(self, row_id: str, item: dict[str, Any], replaces_state: str | None = None) -> None:
        """Write an immutable row (an audit row) in the same transaction; refused as ROW_EXISTS `row_id`.
        With `replaces_state`, a row already there in that `state` is overwritten (a claim that failed)."""
        put: dict[str, Any] = {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}
        if replaces_state is not None:
            put |= {
                "ConditionExpression": "attribute_not_exists(pk) OR #state = :replaceable",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":replaceable": replaces_state},
            }
        self._add(Refused(Limit.ROW_EXISTS, row_id), {"Put": put})

    def transition(
        self,
        row_id: str,
        key: tuple[str, str],
        from_states: Sequence[str],
        to_state: str,
        *,
        set_: dict[str, Any] | None = None,
        remove: Sequence[str] = (),
        add: dict[str, Any] | None = None,
        lease: str | None = None,
        lease_until: float | None = None,
    ) -> None:
        """Move a row's `state` from one of `from_states` to `to_state` (setting `set_`, removing
        `remove`, adding `add`: a number to a counter, a set of strings to a set) in the same
        transaction; refused as STATE `row_id` when the row is elsewhere.

        `lease` names the row's lease, an instant until which whoever took it holds the row: the
        move is refused too (as STATE) while it is held, i.e. not yet past the batch's `now`. With
        `lease_until` the move takes the lease until that instant. Taken in place (`to_state` one of
        `from_states`) it is a claim: of concurrent claims one wins, and none while it is held."""
        set_ = dict(set_ or {})
        if lease_until is not None:
            if lease is None or lease_until <= self.now:
                raise ValueError("a lease is taken by name, until an instant after the batch's now")
            set_[lease] = _decimal_seconds(lease_until)
        names = {"#state": "state"} | {f"#s{i}": name for i, name in enumerate(set_)}
        values: dict[str, Any] = {":to": to_state} | {f":s{i}": value for i, value in enumerate(set_.values())}
        values |= {f":from{i}": state for i, state in enumerate(from_states)}
        update = "SET #state = :to" + "".join(f", #s{i} = :s{i}" for i in range(len(set_)))
        if add:
            names |= {f"#a{i}": name for i, name in enumerate(add)}
            values |= {f":a{i}": value for i, value in enumerate(add.values())}
            update += " ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(add)))
        if remove:
            names |= {f"#r{i}": name for i, name in enumerate(remove)}
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(remove)))
        condition = f"#state IN ({', '.join(f':from{i}' for i in range(len(from_states)))})"
        if lease is not None:
            names["#lease"] = lease
            values[":lease_now"] = _decimal_seconds(self.now)
            condition += " AND (attribute_not_exists(#lease) OR #lease <= :lease_now)"
        self._add(Refused(Limit.STATE, row_id), _conditional_update(key, update, condition, names, values))

    def bounded_counter(
        self,
        counter_id: str,
        key: tuple[str, str],
        deltas: dict[str, int],
        *,
        bound: tuple[str, int] | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        """Add `deltas` to an item's counters under a condition; refused as BOUND `counter_id`.

        With `bound = (name, limit)` the counter `name` must stay ≤ `limit` after the update (the
        item's first update too); without, the item must already exist (a counter is only ever
        moved back after a bounded update created it). `attributes` are set alongside.
        """
        names = {f"#c{i}": name for i, name in enumerate(deltas)}
        values: dict[str, Any] = {f":c{i}": delta for i, delta in enumerate(deltas.values())}
        update = "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(deltas)))
        if attributes:
            names |= {f"#s{i}": name for i, name in enumerate(attributes)}
            values |= {f":s{i}": value for i, value in enumerate(attributes.values())}
            update += " SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(attributes)))
        condition = "attribute_exists(pk)"
        if bound is not None:
            name, limit = bound
            names["#bound"] = name
            values |= {":room": limit - deltas.get(name, 0), ":zero": 0}
            condition = "(attribute_not_exists(#bound) AND :room >= :zero) OR #bound <= :room"
        self._add(Refused(Limit.BOUND, counter_id), _conditional_update(key, update, condition, names, values))

    def count(self, key: tuple[str, str], attributes: dict[str, str], **deltas: int) -> None:
        """Add `deltas` to the counters of an item (statistics); merged per item like accounts."""
        counter = self._counters.setdefault(key, {"attributes": dict(attributes), "deltas": {}})
        for name, delta in deltas.items():
            counter["deltas"][name] = counter["deltas"].get(name, 0) + delta

    def _new(
        self,
        transfer_id: str,
        debit: str,
        credit: str,
        amount_sats: int,
        code: str,
        state: TransferState,
        expires_at: float | None,
        meta: dict[str, Any],
    ) -> Transfer:
        if not transfer_id or len(transfer_id) > TRANSFER_ID_LENGTH_MAX:
            raise InvalidInput(f"a transfer id has 1 to {TRANSFER_ID_LENGTH_MAX} characters")
        if debit == credit:
            raise InvalidInput("a transfer needs two different accounts")
        if clashing := set(meta) & Transfer.CORE_ATTRIBUTES:
            raise ValueError(f"meta may not overwrite a transfer's own attributes: {sorted(clashing)}")
        require_sats(amount_sats, "a transfer's amount")
        transfer = Transfer(transfer_id, debit, credit, amount_sats, code, state, self.now, expires_at=expires_at, meta=meta)
        pk, sk = transfer_key(transfer_id)
        item: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "type": "transfer",
            "transfer_id": transfer_id,
            "debit_account_id": debit,
            "credit_account_id": credit,
            "amount_sats": amount_sats,
            "code": code,
            "state": state.value,
            "created_at": _decimal_seconds(self.now),
            **meta,
        }
        if expires_at is not None:
            item["expires_at"] = _decimal_seconds(expires_at)
            # A sparse index of holds by expiry: the sweeper's only access pattern.
            item["gsi1pk"], item["gsi1sk"] = PENDING_INDEX_PARTITION, f"{iso(expires_at)}#{transfer_id}"
        self._actions.append(
            (Refused(Limit.TRANSFER_EXISTS, transfer_id), {"Put": {"Item": item, "ConditionExpression": "attribute_not_exists(pk)"}})
        )
        return transfer

    def _resolve(self, pending: Transfer, state: TransferState, posted_sats: int | None, expect: Mapping[str, Any] | None) -> None:
        pk, sk = transfer_key(pending.transfer_id)
        names = {"#state": "state"} | {f"#e{i}": name for i, name in enumerate(expect or {})}
        update = "SET #state = :state, resolved_at = :now REMOVE gsi1pk, gsi1sk"
        values: dict[str, Any] = {
            ":state": state.value,
            ":now": _decimal_seconds(self.now),
            ":pending": TransferState.PENDING.value,
            ":amount": pending.amount_sats,
        }
        if posted_sats is not None:
            update = "SET #state = :state, resolved_at = :now, posted_sats = :posted REMOVE gsi1pk, gsi1sk"
            values[":posted"] = posted_sats
        values |= {f":e{i}": value for i, value in enumerate((expect or {}).values())}
        # Resolved exactly once, and only the hold the caller read (or holds a record of).
        condition = "#state = :pending AND amount_sats = :amount" + "".join(f" AND #e{i} = :e{i}" for i in range(len(expect or {})))
        self._actions.append(
            (
                Refused(Limit.HOLD_RESOLVED, pending.transfer_id),
                _conditional_update((pk, sk), update, condition, names, values),
            )
        )

    def actions(self) -> list[tuple[Refused, dict[str, Any]]]:
        """Every action of the transaction, account updates merged one per account."""
        account_actions = [
            (Refused(Limit.OVERDRAFT, account_id), _account_update(account_id, delta)) for account_id, delta in sorted(self._deltas.items())
        ]
        counter_actions = [
            (Refused(Limit.BOUND, pk), _counter_update(pk, sk, c["attributes"], c["deltas"]))
            for (pk, sk), c in sorted(self._counters.items())
        ]
        labelled = self._actions + account_actions + counter_actions
        keys = [_item_key(action) for _, action in labelled]
        if len(set(keys)) != len(keys):  # DynamoDB refuses an item twice in one transaction
            raise ValueError(f"a transaction names an item twice: {sorted(k for k in keys if keys.count(k) > 1)}")
        return labelled


def _item_key(action: dict[str, Any]) -> tuple[str, str]:
    (body,) = action.values()
    key = body.get("Key") or body["Item"]
    return key["pk"], key["sk"]


def decimal_seconds(seconds: float) -> Decimal:
    """An instant as the ledger stores it: seconds, to the millisecond."""
    return Decimal(str(round(seconds, 3)))


_decimal_seconds = decimal_seconds


def _counter_update(pk: str, sk: str, attributes: dict[str, str], deltas: dict[str, int]) -> dict[str, Any]:
    names = {f"#a{i}": name for i, name in enumerate(deltas)} | {f"#s{i}": name for i, name in enumerate(attributes)}
    values = {f":a{i}": delta for i, delta in enumerate(deltas.values())} | {f":s{i}": value for i, value in enumerate(attributes.values())}
    update = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(deltas)))
    if attributes:
        update += " SET " + ", ".join(f"#s{i} = :s{i}" for i in range(len(attributes)))
    return {
        "Update": {
            "Key": {"pk": pk, "sk": sk},
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _conditional_update(key: tuple[str, str], update: str, condition: str, names: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """One item's `Update` action under `condition`."""
    return {
        "Update": {
            "Key": {"pk": key[0], "sk": key[1]},
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _account_update(account_id: str, delta: Account) -> dict[str, Any]:
    pk, sk = account_key(account_id)
    update: dict[str, Any] = {
        "Key": {"pk": pk, "sk": sk},
        "UpdateExpression": (
            "ADD debits_pending :dp, debits_posted :dP, credits_pending :cp, credits_posted :cP, available_sats :avail, "
            "version :one SET #type = :type, account_id = :id"
        ),
        "ExpressionAttributeNames": {"#type": "type"},
        "ExpressionAttributeValues": {
            ":dp": delta.debits_pending,
            ":dP": delta.debits_posted,
            ":cp": delta.credits_pending,
            ":cP": delta.credits_posted,
            ":avail": delta.computed_available_sats,
            ":one": 1,  # every update counts: the live audit tells a quiet account by it (no A-B-A)
            ":type": "account",
            ":id": account_id,
        },
    }
    if must_not_overdraw(account_id) and delta.computed_available_sats < 0:
        # The no-overdraft rule, next to the debit it guards: what is spent must be available.
        update["ConditionExpression"] = "available_sats >= :need"
        update["ExpressionAttributeValues"][":need"] = -delta.computed_available_sats
    return {"Update": update}


class Ledger:
    """Commits batches and answers reads of accounts and transfers."""

    def __init__(self, store: Store, clock: Clock, sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.clock = clock
        self._sleep = sleep

    def batch(self) -> Batch:
        return Batch(now=self.clock.now())

    def commit(self, batch: Batch) -> None:
        """Run the batch as one transaction; retries conflicts (bounded, jittered).

        Raises `ConditionFailed` with every failed condition, typed; nothing is written then.
        """
        labelled = batch.actions()
        if len(labelled) > TRANSACTION_ACTIONS_MAX:
            raise ValueError(f"one transaction holds at most {TRANSACTION_ACTIONS_MAX} actions, not {len(labelled)}")
        labels = [label for label, _ in labelled]
        actions = [action for _, action in labelled]
        for attempt in range(CONFLICT_RETRIES_MAX):
            try:
                self.store.transact(actions)
                return
            except TransactionCancelled as cancelled:
                failed = [labels[i] for i in range(len(labels)) if cancelled.failed(i)]
                if failed:
                    raise ConditionFailed(failed) from None
                refused = {reason for reason in cancelled.reasons if reason not in RETRYABLE_REASONS}
                if refused:  # a malformed transaction: retrying cannot help
                    raise RuntimeError(f"DynamoDB refused the transaction: {sorted(map(str, refused))}") from None
                self._back_off(attempt)

    def _back_off(self, attempt: int) -> None:
        """After a conflict on `attempt` (0-based): a jittered, growing pause, or `LedgerConflict`
        once the attempts are spent."""
        if attempt + 1 == CONFLICT_RETRIES_MAX:
            raise LedgerConflict("the ledger is busy; retry shortly") from None
        self._sleep(random.uniform(0, CONFLICT_BACKOFF_SECONDS_BASE * 2**attempt))

    # --- reads -------------------------------------------------------------------------

    def account(self, account_id: str) -> Account:
        return Account.from_item(self.store.get(*account_key(account_id)), account_id)

    def transfer(self, transfer_id: str) -> Transfer | None:
        item = self.store.get(*transfer_key(transfer_id))
        return Transfer.from_item(item) if item else None

    def item(self, key: tuple[str, str]) -> dict[str, Any] | None:
        """One item of the table (consistent), for a use case's own rows (jobs, sessions, invoices,
        payouts, counters, audit rows)."""
        return self.store.get(*key)

    def page(
        self, partition: str, limit: int, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of a partition, and the key the next page starts from."""
        return self.store.query(PageQuery(partition, limit, start_key=start_key))

    def read(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Several items in one round trip (consistent)."""
        return self.store.batch_get(keys)

    def snapshot(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Up to 100 items in one round trip, as one snapshot: no transaction is seen half-applied
        across them (an account and the counter its transaction also moved). A read that met a write
        transaction in flight is retried (bounded, jittered); `LedgerConflict` after that."""
        for attempt in range(CONFLICT_RETRIES_MAX):
            try:
                return self.store.transact_get(keys)
            except TransactionCancelled:
                self._back_off(attempt)
        raise AssertionError("unreachable: the last attempt raises LedgerConflict")

    def listed(
        self, partition: str, limit: int, *, until: float | None = None, start_key: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of the open rows listed under `partition` in the sparse index (gsi1, whose sort
        key starts with the instant a row was listed), oldest first, only those listed up to `until`
        when given, and the key the next page starts from (None after the last page). The index may
        lag: a sweeper reads each row itself before acting on it."""
        sk_max = None if until is None else f"{iso(until)}#\uffff"
        return self.store.query(PageQuery(partition, limit, index_name="gsi1", sk_max=sk_max, start_key=start_key))

    def each_listed(self, partition: str, page_size: int, pages_max: int, *, until: float | None = None) -> Iterator[dict[str, Any]]:
        """Every row `listed` under `partition` (up to `until`), page after page by key, at most
        `pages_max` pages of `page_size`: a sweep's whole run. Paging by key (not by re-reading the
        first page) carries a sweep past rows a lagging index still lists after they were closed."""
        start: dict[str, Any] | None = None
        for _page in range(pages_max):
            items, start = self.listed(partition, page_size, until=until, start_key=start)
            yield from items
            if start is None:
                return

    def expired_holds(self, now: float, page_size: int, pages_max: int) -> Iterator[Transfer]:
        """The holds whose expiry has passed, oldest first (the sparse pending index). The index
        may lag (a GSI is eventually consistent): it can still list holds already resolved; such a
        hold fails its resolve condition and is skipped."""
        for item in self.each_listed(PENDING_INDEX_PARTITION, page_size, pages_max, until=now):
            yield Transfer.from_item(item)

    # --- single-transfer conveniences ---------------------------------------------------

    def create_transfer(self, transfer_id: str, debit: str, credit: str, amount_sats: int, code: str, **meta: Any) -> Transfer:
        """A posted transfer, idempotent by id: a replay returns the first transfer."""
        batch = self.batch()
        return self.commit_transfer(batch, batch.transfer(transfer_id, debit, credit, amount_sats, code, **meta))

    def commit_transfer(self, batch: Batch, transfer: Transfer) -> Transfer:
        """Commit a batch built around `transfer`, idempotent by its id: a replay of the same
        movement returns the first transfer; the same id for another movement is `already_applied`."""
        try:
            self.commit(batch)
        except ConditionFailed as failed:
            return self._replayed(transfer, failed)
        return transfer

    def _replayed(self, attempted: Transfer, failed: ConditionFailed) -> Transfer:
        """The answer to a transfer whose id was applied before (or the error that stopped it)."""
        if failed.lost(Limit.TRANSFER_EXISTS, attempted.transfer_id):
            existing = self.transfer(attempted.transfer_id)
            if existing is None:  # pragma: no cover - a put cannot fail on an absent item
                raise Conflict("the transfer could not be written; retry")
            if not existing.same_request(attempted):
                raise AlreadyApplied(f"transfer {attempted.transfer_id} was applied before with other parameters")
            return existing
        accounts = failed.ids(Limit.OVERDRAFT)
        raise InsufficientFunds(f"not enough sats available in {', '.join(accounts) or 'the ledger'}")

    def require_transfer(self, transfer_id: str) -> Transfer:
        """The transfer `transfer_id`, or NotFound."""
        transfer = self.transfer(transfer_id)
        if transfer is None:
            raise NotFound(f"no transfer {transfer_id}")
        return transfer
