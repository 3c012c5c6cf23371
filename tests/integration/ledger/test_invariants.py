"""The checker catches each kind of corruption written behind the ledger's back."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.free_tier.service import FreeTierService
from timmy.identity.caller import Caller
from timmy.ledger.invariants import audit, audit_store
from timmy.ledger.model import POOL, account_key, transfer_key

CALLER = Caller("a" * 64, "elite")


@pytest.fixture
def busy_ledger(free_tier: FreeTierService) -> FreeTierService:
    free_tier.decide_and_reserve(CALLER, 100, "settled")
    free_tier.record_grant(CALLER.pubkey, "settled", 80, 100)
    free_tier.decide_and_reserve(CALLER, 40, "pending")
    free_tier.credit(1_000, "charge-1")
    assert audit_store(free_tier.ledger.store).ok
    return free_tier


def _fails(store: DynamoStore) -> set[str]:
    return set(audit_store(store).failed())


def _tamper(store: DynamoStore, key: tuple[str, str], expression: str, **values: int) -> None:
    """Change an item behind the ledger's back (one raw update, no ledger rule applied)."""
    update = {
        "Key": {"pk": key[0], "sk": key[1]},
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {f":{k}": v for k, v in values.items()},
    }
    store.transact([{"Update": update}])


@pytest.mark.corrupts_ledger
def test_an_unbalanced_transfer_is_caught(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    _tamper(store, transfer_key("pool-seed"), "SET amount_sats = :a", a=1999)
    assert "accounts_match_transfers" in _fails(store)


@pytest.mark.corrupts_ledger
def test_an_account_off_by_one_is_caught(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    _tamper(store, account_key(POOL), "ADD credits_posted :one, available_sats :one", one=1)
    assert {"balanced", "accounts_match_transfers"} <= _fails(store)


@pytest.mark.corrupts_ledger
def test_a_grant_row_without_its_transfer_is_caught(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    (row,) = busy_ledger.grants(None)["grants"]
    store.put({**row, "pk": f"GRANTS#{row['day']}", "sk": "zzz#forged", "type": "grant", "transfer_id": "subsidy:forged"})
    assert _fails(store) == {"grants_match_subsidies"}


@pytest.mark.corrupts_ledger
def test_a_budget_counter_over_its_budget_is_caught(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    usage = busy_ledger.usage_today(CALLER.pubkey, "elite")
    _tamper(store, (f"IDENTITY#{CALLER.pubkey}", f"DAY#{usage.day}"), "SET budget_sats = :b", b=100)
    assert _fails(store) == {"daily_budgets"}


@pytest.mark.corrupts_ledger
def test_a_pool_below_zero_is_caught(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    busy_ledger.ledger.create_transfer("drain", "operator-revenue", "operator-equity", 1, "test")
    _tamper(store, account_key(POOL), "SET available_sats = :v", v=-5)
    assert "non_negative" in _fails(store)


@pytest.mark.corrupts_ledger
def test_a_payment_applied_twice_is_caught(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    ledger = busy_ledger.ledger
    ledger.create_transfer("pay-1", "lightning-clearing", "operator-revenue", 10, "payment_in", payment_hash="ab" * 32)
    ledger.create_transfer("pay-2", "lightning-clearing", "operator-revenue", 10, "payment_in", payment_hash="ab" * 32)
    assert _fails(store) == {"applied_once"}


@pytest.mark.corrupts_ledger
def test_an_unreadable_item_is_a_failed_check_not_a_crash(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    (row,) = busy_ledger.grants(None)["grants"]
    store.put({"pk": f"GRANTS#{row['day']}", "sk": "zzz#broken", "type": "grant", "transfer_id": "x"})  # no amounts
    store.put({"pk": "TRANSFER#odd", "sk": "TRANSFER", "type": "transfer", "transfer_id": "odd", "state": "lost"})
    anonymous = {"debit_account_id": "pool", "credit_account_id": "operator-revenue", "amount_sats": 0, "created_at": 1}
    store.put(
        {
            "pk": "TRANSFER#anon",
            "sk": "TRANSFER",
            "type": "transfer",
            "transfer_id": "anon",
            "state": "posted",
            "code": "subsidy",
            **anonymous,
        }
    )
    report = audit_store(store)
    assert report.failed() == ["well_formed"]
    (check,) = [c for c in report.checks if c.name == "well_formed"]
    assert check.offending_ids == [f"GRANTS#{row['day']}|zzz#broken", "TRANSFER#anon|TRANSFER", "TRANSFER#odd|TRANSFER"]


def test_an_audit_under_live_traffic_does_not_cry_corruption(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    """A scan reads page by page: accounts read on a page before a hold lands, its transfer on a
    page after. The first scan of each audit below sees the table torn that way."""
    real_scan = store.scan
    holds = iter(range(2))

    def torn_scan() -> Iterator[dict[str, Any]]:
        hold = next(holds, None)
        if hold is None:
            yield from real_scan()
            return
        before = {(i["pk"], i["sk"]): i for i in real_scan()}
        busy_ledger.decide_and_reserve(CALLER, 7, f"mid-scan-{hold}")
        for item in real_scan():
            key = (item["pk"], item["sk"])
            yield before.get(key, item) if item["type"] == "account" else item

    store.scan = torn_scan  # type: ignore[method-assign]
    assert "accounts_match_transfers" in audit(store.scan()).failed()  # one scan alone is fooled
    report = audit_store(store)  # the live audit re-checks the suspects on a fresh scan and clears them
    assert report.ok, report.as_dict()
    assert report.recheck is not None and report.recheck.confirmed == [] and report.recheck.unsettled == []
    assert "accounts_match_transfers:pool" in report.recheck.cleared


@pytest.mark.corrupts_ledger
def test_a_live_audit_whose_every_scan_is_torn_confirms_only_real_corruption(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    """Traffic that never stops: a hold lands in the middle of every scan. The pool and revenue
    never hold still, so they stay unsettled (not failed); the corrupted seed is confirmed on
    operator equity, which no hold touches."""
    real_scan = store.scan
    holds = itertools.count()

    def torn_scan() -> Iterator[dict[str, Any]]:
        before = {(i["pk"], i["sk"]): i for i in real_scan()}
        busy_ledger.decide_and_reserve(CALLER, 7, f"mid-scan-{next(holds)}")
        for item in real_scan():
            yield before.get((item["pk"], item["sk"]), item) if item["type"] == "account" else item

    store.scan = torn_scan  # type: ignore[method-assign]
    report = audit_store(store, sleep=lambda _: None)
    assert report.ok, report.as_dict()  # torn every time, yet no alarm
    assert report.recheck is not None and report.recheck.rounds == 5 and report.recheck.confirmed == []
    assert {"accounts_match_transfers:pool", "accounts_match_transfers:operator-revenue"} <= set(report.recheck.unsettled)
    (check,) = [c for c in report.checks if c.name == "accounts_match_transfers"]
    assert "run the audit again" in check.detail and "pool" in check.unsettled_ids

    _tamper(store, transfer_key("pool-seed"), "SET amount_sats = :a", a=1999)
    report = audit_store(store, sleep=lambda _: None)
    assert report.failed() == ["accounts_match_transfers"]
    assert report.recheck is not None and report.recheck.confirmed == ["accounts_match_transfers:operator-equity"]
    assert "accounts_match_transfers:pool" in report.recheck.unsettled  # corrupt too, but never still


def test_a_scan_torn_across_accounts_is_cleared_by_one_snapshot_of_them(busy_ledger: FreeTierService, store: DynamoStore) -> None:
    """The pool read before a hold lands, revenue after: Σ accounts looks off by the hold. The
    re-check reads every account in one TransactGetItems snapshot, where it is not."""
    real_scan = store.scan
    torn = iter([True])

    def torn_scan() -> Iterator[dict[str, Any]]:
        if not next(torn, False):
            yield from real_scan()
            return
        pool_before = store.get(*account_key(POOL))
        assert pool_before is not None
        busy_ledger.decide_and_reserve(CALLER, 7, "mid-scan")
        for item in real_scan():
            yield pool_before if (item["pk"], item["sk"]) == account_key(POOL) else item

    store.scan = torn_scan  # type: ignore[method-assign]
    report = audit_store(store)
    assert report.ok, report.as_dict()
    assert report.recheck is not None
    assert {"balanced:all accounts", "accounts_match_transfers:pool"} <= set(report.recheck.cleared)
    assert "balanced:pending:7" in report.recheck.suspects  # revenue credited 7 pending the pool had not debited
