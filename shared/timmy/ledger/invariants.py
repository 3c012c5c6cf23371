"""The invariant checker of contract section 4: six checks over the whole table, each reported by
name with the ids that break it. `GET /api/admin/audit` runs it, and so do the tests after every
test that touches the ledger."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from timmy.ledger.model import Account, Transfer, TransferCode, TransferState, must_not_overdraw

OFFENDERS_SHOWN_MAX = 20


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    offending_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "offending_ids": self.offending_ids[:OFFENDERS_SHOWN_MAX]}


@dataclass
class AuditReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.as_dict() for check in self.checks]}


def _check(name: str, offenders: list[str], good: str, bad: str) -> Check:
    return Check(name, not offenders, bad if offenders else good, sorted(offenders))


def audit(items: Iterable[dict[str, Any]]) -> AuditReport:
    """Run every check over the table's items (a consistent scan)."""
    accounts: dict[str, Account] = {}
    stored_available: dict[str, int] = {}
    transfers: list[Transfer] = []
    grants: list[dict[str, Any]] = []
    budget_days: list[dict[str, Any]] = []
    for item in items:
        kind = item.get("type")
        if kind == "account":
            accounts[item["account_id"]] = Account.from_item(item, item["account_id"])
            stored_available[item["account_id"]] = item.get("available_sats", 0)
        elif kind == "transfer":
            transfers.append(Transfer.from_item(item))
        elif kind == "grant":
            grants.append(item)
        elif kind == "budget_day":
            budget_days.append(item)
    return AuditReport(
        [
            _balanced(accounts),
            _non_negative(accounts, stored_available),
            _accounts_match_transfers(accounts, transfers),
            _daily_budgets(budget_days, transfers),
            _grants_match_subsidies(grants, transfers),
            _applied_once(transfers),
        ]
    )


def _balanced(accounts: dict[str, Account]) -> Check:
    posted = sum(a.credits_posted - a.debits_posted for a in accounts.values())
    pending = sum(a.credits_pending - a.debits_pending for a in accounts.values())
    offenders = ([f"posted:{posted}"] if posted else []) + ([f"pending:{pending}"] if pending else [])
    return _check(
        "balanced", offenders, "Σ credits − debits is 0, posted and pending", f"Σ credits − debits is posted {posted}, pending {pending}"
    )


def _non_negative(accounts: dict[str, Account], stored_available: dict[str, int]) -> Check:
    offenders = []
    for account_id, account in accounts.items():
        out_of_step = stored_available[account_id] != account.computed_available_sats
        overdrawn = must_not_overdraw(account_id) and (account.posted_balance_sats < 0 or account.computed_available_sats < 0)
        if out_of_step or overdrawn:
            offenders.append(account_id)
    return _check(
        "non_negative",
        offenders,
        "no pool, escrow or session account is below 0, posted or available",
        "accounts below 0 (or whose available balance disagrees with their counters)",
    )


def _accounts_match_transfers(accounts: dict[str, Account], transfers: list[Transfer]) -> Check:
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for t in transfers:
        expected[t.debit_account_id][0] += t.pending_sats
        expected[t.debit_account_id][1] += t.effective_posted_sats
        expected[t.credit_account_id][2] += t.pending_sats
        expected[t.credit_account_id][3] += t.effective_posted_sats
    offenders = []
    for account_id in set(accounts) | set(expected):
        a = accounts.get(account_id, Account(account_id))
        if [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted] != expected[account_id]:
            offenders.append(account_id)
    return _check(
        "accounts_match_transfers",
        offenders,
        "every account equals the sum of its transfers",
        "accounts that differ from the sum of their transfers",
    )


def _daily_budgets(budget_days: list[dict[str, Any]], transfers: list[Transfer]) -> Check:
    from_transfers: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for t in transfers:
        if t.code == TransferCode.SUBSIDY:
            key = (t.meta["pubkey"], t.meta["day"])
            from_transfers[key][0] += t.effective_posted_sats
            from_transfers[key][1] += t.pending_sats
    offenders = []
    seen = set()
    for day in budget_days:
        key = (day["pubkey"], day["day"])
        seen.add(key)
        absorbed, reserved = day.get("absorbed_sats", 0), day.get("reserved_sats", 0)
        if (
            absorbed + reserved > day.get("budget_sats", 0)
            or [absorbed, reserved] != from_transfers[key]
            or day.get("used_sats", 0) != absorbed + reserved
        ):
            offenders.append(f"{key[0]}:{key[1]}")
    offenders += [f"{k[0]}:{k[1]}" for k, v in from_transfers.items() if k not in seen and any(v)]
    return _check(
        "daily_budgets",
        offenders,
        "for every identity and UTC day, absorbed + reserved ≤ that day's budget (and matches its transfers)",
        "identity-days over budget or out of step with their subsidy transfers",
    )


def _grants_match_subsidies(grants: list[dict[str, Any]], transfers: list[Transfer]) -> Check:
    posted = {t.transfer_id: t.effective_posted_sats for t in transfers if t.code == TransferCode.SUBSIDY and t.effective_posted_sats > 0}
    rows: dict[str, list[int]] = defaultdict(list)
    for grant in grants:
        rows[grant["transfer_id"]].append(grant["absorbed_sats"])
    offenders = [tid for tid in set(posted) | set(rows) if rows.get(tid) != [posted.get(tid)]]
    total_grants = sum(g["absorbed_sats"] for g in grants)
    total_subsidy = sum(posted.values())
    if total_grants != total_subsidy and not offenders:
        offenders.append(f"totals:{total_grants}!={total_subsidy}")
    return _check(
        "grants_match_subsidies",
        offenders,
        f"every absorbed sat has exactly one grant row; Σ grants = Σ subsidies = {total_subsidy}",
        f"grant rows and posted subsidies disagree (Σ grants {total_grants}, Σ subsidies {total_subsidy})",
    )


def _applied_once(transfers: list[Transfer]) -> Check:
    """No transfer id, payment hash or refund applied twice (ids are keys; hashes are checked)."""
    seen: dict[tuple[str, str], str] = {}
    offenders = []
    for t in transfers:
        for attribute in ("payment_hash", "refund_of", "source_transfer_id"):
            value = t.meta.get(attribute)
            if value is None:
                continue
            key = (f"{t.code}:{attribute}", str(value))
            if key in seen:
                offenders += [seen[key], t.transfer_id]
            seen[key] = t.transfer_id
        if t.state is TransferState.POSTED and t.posted_sats is not None and t.posted_sats > t.amount_sats:
            offenders.append(t.transfer_id)
    return _check("applied_once", offenders, "no transfer id, payment hash or refund is applied twice", "movements applied more than once")


def audit_store(store: Any) -> AuditReport:
    """`audit` over a consistent scan of the store's table."""
    return audit(store.scan())
