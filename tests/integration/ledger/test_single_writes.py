"""A batch of one action commits as one single-item write (PutItem, UpdateItem), not a transaction:
half the capacity, the same typed refusals, the same races, and exactly once under botocore's own
retry of a write whose answer was lost (as a transaction's ClientRequestToken makes it)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from timmy.adapters.dynamodb import WRITE_TOKEN, DynamoStore
from timmy.clock import FixedClock
from timmy.errors import LedgerConflict
from timmy.ledger import ledger as ledger_module
from timmy.ledger.ledger import CONFLICT_RETRIES_MAX, Batch, ConditionFailed, Ledger, Limit, Refused, decimal_seconds
from timmy.ledger.model import OPERATOR_EQUITY, OPERATOR_REVENUE, POOL, Transfer, TransferCode

ROW = ("ROW#r1", "ROW")
COUNTER = ("COUNTER#c1", "COUNTER")
RACERS = 32


class Recording:
    """The store, recording which port call each commit made."""

    def __init__(self, store: DynamoStore):
        self.store = store
        self.writes: list[Any] = []
        self.transactions: list[Any] = []

    def write(self, action: Any) -> None:
        self.writes.append(action)
        self.store.write(action)

    def transact(self, actions: Any) -> None:
        self.transactions.append(actions)
        self.store.transact(actions)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


@pytest.fixture
def recording(store: DynamoStore) -> Recording:
    return Recording(store)


@pytest.fixture
def ledger(recording: Recording, clock: FixedClock) -> Ledger:
    return Ledger(recording, clock, sleep=lambda _seconds: None)  # type: ignore[arg-type]


def row(state: str = "open", **attributes: Any) -> dict[str, Any]:
    return {"pk": ROW[0], "sk": ROW[1], "type": "row", "state": state, **attributes}


def commit_one(ledger: Ledger, build: Callable[[Batch], None]) -> None:
    batch = ledger.batch()
    build(batch)
    ledger.commit(batch)


# Each kind of one-action batch a use case commits, and what its failed condition is refused as.
# `prepare` leaves the table where the action's condition fails.
ONE_ACTION_BATCHES: dict[str, tuple[Callable[[Batch], None], Callable[[Ledger], None], Refused]] = {
    "put_once": (
        lambda b: b.put_once("r1", row()),
        lambda ledger: commit_one(ledger, lambda b: b.put_once("r1", row())),
        Refused(Limit.ROW_EXISTS, "r1"),
    ),
    "put_once replacing a state": (
        lambda b: b.put_once("r1", row(), replaces_state="failed"),
        lambda ledger: commit_one(ledger, lambda b: b.put_once("r1", row("claimed"))),
        Refused(Limit.ROW_EXISTS, "r1"),
    ),
    "transition": (
        lambda b: b.transition("r1", ROW, ["open"], "shut", set_={"reason": "done"}, remove=["note"]),
        lambda ledger: commit_one(ledger, lambda b: b.put_once("r1", row("shut"))),
        Refused(Limit.STATE, "r1"),
    ),
    "lease claim": (
        lambda b: b.transition("r1", ROW, ["open"], "open", add={"attempts": 1}, lease="lease_until", lease_until=b.now + 60),
        lambda ledger: commit_one(ledger, lambda b: b.put_once("r1", row(lease_until=decimal_seconds(ledger.clock.now() + 30)))),  # held
        Refused(Limit.STATE, "r1"),
    ),
    "bounded_counter": (
        lambda b: b.bounded_counter("c1", COUNTER, {"used": 5}, bound=("used", 10)),
        lambda ledger: commit_one(ledger, lambda b: b.bounded_counter("c1", COUNTER, {"used": 8}, bound=("used", 10))),
        Refused(Limit.BOUND, "c1"),
    ),
    "update": (
        lambda b: b.update(
            "r1",
            {
                "Update": {
                    "Key": {"pk": ROW[0], "sk": ROW[1]},
                    "UpdateExpression": "SET seen = :yes",
                    "ConditionExpression": "attribute_exists(pk)",
                    "ExpressionAttributeValues": {":yes": True},
                }
            },
        ),
        lambda ledger: None,  # no row: the update's condition fails
        Refused(Limit.ROW_EXISTS, "r1"),
    ),
}


def _ready(ledger: Ledger, kind: str) -> None:
    """The table where the one-action batch `kind` succeeds (its row exists where it must)."""
    if kind in ("transition", "lease claim", "update"):
        commit_one(ledger, lambda b: b.put_once("r1", row(note="x")))


@pytest.mark.parametrize("kind", sorted(ONE_ACTION_BATCHES))
def test_a_batch_of_one_action_is_one_single_item_write_at_half_the_capacity(
    kind: str, ledger: Ledger, recording: Recording, store: DynamoStore
) -> None:
    build, _prepare, _refused = ONE_ACTION_BATCHES[kind]
    _ready(ledger, kind)
    recording.writes.clear()
    calls, wcu, _ = store.usage.snapshot()
    commit_one(ledger, build)
    assert (len(recording.writes), recording.transactions) == (1, [])
    after_calls, after_wcu, _ = store.usage.snapshot()
    assert after_calls - calls == 1
    assert after_wcu - wcu == 1.0  # one small item, standard write (DynamoDB Local counts a transaction as 4)


@pytest.mark.parametrize("path", ["single write", "transaction"])
@pytest.mark.parametrize("kind", sorted(ONE_ACTION_BATCHES))
def test_a_failed_condition_is_refused_as_the_same_typed_limit_on_either_path(
    kind: str, path: str, ledger: Ledger, recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    build, prepare, refused = ONE_ACTION_BATCHES[kind]
    prepare(ledger)
    before = ledger.item(ROW), ledger.item(COUNTER)
    if path == "transaction":
        monkeypatch.setattr(ledger_module, "SINGLE_WRITE_KINDS", frozenset())
    recording.writes.clear()
    with pytest.raises(ConditionFailed) as failed:
        commit_one(ledger, build)
    assert failed.value.refused == [refused]
    assert (ledger.item(ROW), ledger.item(COUNTER)) == before  # nothing written
    assert bool(recording.writes) == (path == "single write")


def test_a_count_alone_adds_once(ledger: Ledger, recording: Recording) -> None:
    for _ in range(3):
        commit_one(ledger, lambda b: b.count(COUNTER, {"type": "stats"}, requests=1, sats=5))
    assert len(recording.writes) == 3 and recording.transactions == []
    assert ledger.item(COUNTER) == {"pk": COUNTER[0], "sk": COUNTER[1], "type": "stats", "requests": 3, "sats": 15}


def test_a_batch_that_moves_sats_is_never_one_action_and_stays_a_transaction(ledger: Ledger, recording: Recording) -> None:
    """A transfer writes three items (itself and its two accounts), a resolve three too: their
    atomicity is the ledger's, and no such batch can reach the single-write path."""
    batch = ledger.batch()
    batch.transfer("seed", OPERATOR_EQUITY, POOL, 100, TransferCode.POOL_TOPUP)
    hold = batch.reserve("hold-1", POOL, OPERATOR_REVENUE, 30, TransferCode.CHARGE, None)
    assert len(batch.actions()) == 5  # two transfers, three accounts
    ledger.commit(batch)
    for resolve in (lambda b, h: b.post(h, 0), lambda b, h: b.void(h)):
        probe = ledger.batch()
        resolve(probe, hold)
        assert len(probe.actions()) == 3
    settle = ledger.batch()
    settle.post(hold, 0)  # nothing posted: still the hold and both accounts
    ledger.commit(settle)
    assert recording.writes == [] and len(recording.transactions) == 2
    assert isinstance(ledger.transfer("hold-1"), Transfer)


def test_a_lone_condition_check_stays_a_transaction(ledger: Ledger, recording: Recording) -> None:
    check = {"ConditionCheck": {"Key": {"pk": ROW[0], "sk": ROW[1]}, "ConditionExpression": "attribute_exists(pk)"}}
    with pytest.raises(ConditionFailed) as failed:
        commit_one(ledger, lambda b: b.update("r1", check))
    assert failed.value.refused == [Refused(Limit.ROW_EXISTS, "r1")]
    assert recording.writes == [] and len(recording.transactions) == 1


def test_reads_never_see_the_write_token(ledger: Ledger, store: DynamoStore) -> None:
    commit_one(ledger, lambda b: b.put_once("r1", row()))
    raw = store.client.get_item(TableName=store.table_name, Key={"pk": {"S": ROW[0]}, "sk": {"S": ROW[1]}})["Item"]
    assert WRITE_TOKEN in raw
    assert ledger.item(ROW) == row()
    assert [item for item in store.scan() if WRITE_TOKEN in item] == []


# --- races --------------------------------------------------------------------------------------


def _race(attempt: Callable[[int], None]) -> list[ConditionFailed | None]:
    def one(index: int) -> ConditionFailed | None:
        try:
            attempt(index)
        except ConditionFailed as failed:
            return failed
        return None

    with ThreadPoolExecutor(RACERS) as pool:
        return list(pool.map(one, range(RACERS)))


def test_racing_lease_claims_one_wins_the_rest_are_refused_typed(ledger: Ledger, recording: Recording) -> None:
    commit_one(ledger, lambda b: b.put_once("r1", row()))
    claim = ONE_ACTION_BATCHES["lease claim"][0]
    outcomes = _race(lambda _index: commit_one(ledger, claim))
    assert outcomes.count(None) == 1
    assert all(o is None or o.refused == [Refused(Limit.STATE, "r1")] for o in outcomes)
    assert ledger.item(ROW)["attempts"] == 1  # type: ignore[index]
    assert recording.transactions == []


def test_racing_puts_of_one_row_one_wins_the_rest_are_refused_typed(ledger: Ledger) -> None:
    outcomes = _race(lambda index: commit_one(ledger, lambda b: b.put_once("r1", row(writer=index))))
    assert outcomes.count(None) == 1
    assert all(o is None or o.refused == [Refused(Limit.ROW_EXISTS, "r1")] for o in outcomes)
    assert ledger.item(ROW)["writer"] == outcomes.index(None)  # type: ignore[index]


def test_racing_bounded_counters_never_pass_the_bound(ledger: Ledger) -> None:
    outcomes = _race(lambda _index: commit_one(ledger, lambda b: b.bounded_counter("c1", COUNTER, {"used": 3}, bound=("used", 20))))
    assert outcomes.count(None) == 6  # 6 × 3 = 18 ≤ 20 < 21
    assert all(o is None or o.refused == [Refused(Limit.BOUND, "c1")] for o in outcomes)
    assert ledger.item(COUNTER)["used"] == 18  # type: ignore[index]


# --- botocore's retries and DynamoDB's refusals --------------------------------------------------


class SendsTwice:
    """A client whose single-item writes are sent twice with the same parameters, answering the
    second: what botocore does when the first committed but its answer was lost (a read timeout)."""

    def __init__(self, client: Any):
        self.client = client

    def _twice(self, operation: str, request: dict[str, Any]) -> Any:
        call = getattr(self.client, operation)
        with contextlib.suppress(ClientError):  # the first answer, lost
            call(**request)
        return call(**request)

    def put_item(self, **request: Any) -> Any:
        return self._twice("put_item", request)

    def update_item(self, **request: Any) -> Any:
        return self._twice("update_item", request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.parametrize("kind", sorted(ONE_ACTION_BATCHES))
def test_a_retried_write_that_had_committed_is_applied_once_and_answers_success(kind: str, store: DynamoStore, clock: FixedClock) -> None:
    ledger = Ledger(DynamoStore(store.table_name, client=SendsTwice(store.client)), clock)
    _ready(Ledger(store, clock), kind)
    build = ONE_ACTION_BATCHES[kind][0]
    commit_one(ledger, build)  # the retry found its own write: no ConditionFailed
    if kind == "lease claim":
        assert ledger.item(ROW)["attempts"] == 1  # type: ignore[index]
    if kind == "bounded_counter":
        assert ledger.item(COUNTER)["used"] == 5  # type: ignore[index]


@pytest.mark.parametrize("kind", sorted(ONE_ACTION_BATCHES))
def test_a_retried_refusal_is_still_refused_typed(kind: str, store: DynamoStore, clock: FixedClock) -> None:
    build, prepare, refused = ONE_ACTION_BATCHES[kind]
    prepare(Ledger(store, clock))
    ledger = Ledger(DynamoStore(store.table_name, client=SendsTwice(store.client)), clock)
    with pytest.raises(ConditionFailed) as failed:
        commit_one(ledger, build)
    assert failed.value.refused == [refused]


def test_a_retried_count_adds_once(store: DynamoStore, clock: FixedClock) -> None:
    ledger = Ledger(DynamoStore(store.table_name, client=SendsTwice(store.client)), clock)
    commit_one(ledger, lambda b: b.count(COUNTER, {"type": "stats"}, requests=1))
    commit_one(ledger, lambda b: b.count(COUNTER, {"type": "stats"}, requests=1))
    assert ledger.item(COUNTER)["requests"] == 2  # type: ignore[index]


class Refuses:
    """A client whose next `times` single-item writes are refused with `code` (not written)."""

    def __init__(self, client: Any, code: str, times: int):
        self.client, self.code, self.times = client, code, times

    def _refuse(self) -> None:
        if self.times:
            self.times -= 1
            raise ClientError({"Error": {"Code": self.code, "Message": "refused"}}, "UpdateItem")

    def put_item(self, **request: Any) -> Any:
        self._refuse()
        return self.client.put_item(**request)

    def update_item(self, **request: Any) -> Any:
        self._refuse()
        return self.client.update_item(**request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.mark.parametrize("code", ["TransactionConflictException", "ProvisionedThroughputExceededException", "ThrottlingException"])
def test_a_conflict_or_throttle_is_retried_with_back_off_then_ledger_busy(code: str, store: DynamoStore, clock: FixedClock) -> None:
    pauses: list[float] = []
    refusing = Refuses(store.client, code, times=2)
    ledger = Ledger(DynamoStore(store.table_name, client=refusing), clock, sleep=pauses.append)
    commit_one(ledger, lambda b: b.put_once("r1", row()))
    assert len(pauses) == 2 and ledger.item(ROW) == row()
    refusing.times = CONFLICT_RETRIES_MAX
    with pytest.raises(LedgerConflict):
        commit_one(ledger, lambda b: b.put_once("r2", {**row(), "pk": "ROW#r2"}))
    assert ledger.item(("ROW#r2", "ROW")) is None


def test_another_refusal_is_raised_as_it_is(store: DynamoStore, clock: FixedClock) -> None:
    ledger = Ledger(DynamoStore(store.table_name, client=Refuses(store.client, "ValidationException", times=1)), clock)
    with pytest.raises(ClientError, match="ValidationException"):
        commit_one(ledger, lambda b: b.put_once("r1", row()))
