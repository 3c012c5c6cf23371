"""The sweeper behind a lagging pending index (a GSI is eventually consistent in AWS; DynamoDB
Local never lags, so the lag is simulated) and after a lost answer."""

from __future__ import annotations

from typing import Any

from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.free_tier.service import FreeTierService
from timmy.identity.caller import Caller
from timmy.ledger.invariants import audit_store
from timmy.ledger.ledger import Ledger
from timmy.ledger.model import PENDING_INDEX_PARTITION
from timmy.ports.store import PageQuery


class LaggingIndex:
    """The store, except that the pending index answers from a snapshot taken at `freeze()`, and
    the `lose_answer_at`-th transaction is applied but its answer lost."""

    def __init__(self, store: DynamoStore):
        self._store = store
        self._frozen: list[dict[str, Any]] | None = None
        self.transactions = 0
        self.lose_answer_at = -1

    def freeze(self) -> None:
        items, last = self._store.query(PageQuery(PENDING_INDEX_PARTITION, 1_000, index_name="gsi1"))
        assert last is None
        self._frozen = items

    def query(self, page: PageQuery) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        if page.index_name != "gsi1" or self._frozen is None:
            return self._store.query(page)
        assert page.limit is not None
        start = (page.start_key or {}).get("position", 0)
        items = self._frozen[start : start + page.limit]
        end = start + len(items)
        return items, ({"position": end} if end < len(self._frozen) else None)

    def transact(self, actions: list[dict[str, Any]]) -> None:
        self.transactions += 1
        self._store.transact(actions)
        if self.transactions == self.lose_answer_at:
            raise ConnectionError("the answer was lost after the commit")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_the_sweep_pages_past_settled_holds_and_survives_a_lost_answer(store: DynamoStore, clock: FixedClock) -> None:
    lagging = LaggingIndex(store)
    free_tier = FreeTierService(Ledger(lagging, clock), Settings(pool_seed_sats=10_000, reservation_ttl_seconds=600), clock)
    caller = Caller("a" * 64, "elite")
    for index in range(150):  # the first 100 expire first, and are settled
        free_tier.decide_and_reserve(caller, 5, f"r{index:03}")
        clock.advance(1)
    lagging.freeze()
    for index in range(100):
        free_tier.record_grant(caller.pubkey, f"r{index:03}", 3, 5)
    clock.advance(601)
    lagging.lose_answer_at = lagging.transactions + 100 + 7  # past the 100 stale ones, the 7th void's answer is lost
    report = free_tier.sweep(page_size=20)
    assert (report.voided, report.skipped, len(report.failed)) == (49, 100, 1)
    assert "ConnectionError" in report.failed[0]
    assert free_tier.pool_status().reserved_sats == 0  # the lost answer's void did commit
    assert audit_store(store).ok
