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
    malformed: list[str] = []
    for item in items:
        kind = item.get("type")
        try:
            if kind == "account":
                accounts[item["account_id"]] = Account.from_item(item, item["account_id"])
                stored_available[item["account_id"]] = int(item.get("available_sats", 0))
            elif kind == "transfer":
                transfer = Transfer.from_item(item)
                if transfer.code == TransferCode.SUBSIDY:
                    _require(item, str, "pubkey", "day")  # the daily-budget check groups by them
                transfers.append(transfer)
            elif kind == "grant":
                _require(item, str, "transfer_id")
                _require(item, int, "absorbed_sats", "reserved_sats")
                grants.append(item)
            elif kind == "budget_day":
                _require(item, str, "pubkey", "day")
                _require(item, int, "budget_sats", "used_sats")
                budget_days.append(item)
        except (KeyError, ValueError, TypeError):
            malformed.append(f"{item.get('pk')}|{item.get('sk')}")
    return AuditReport(
        [
            _balanced(accounts),
            _non_negative(accounts, stored_available),
            _accounts_match_transfers(accounts, transfers),
            _daily_budgets(budget_days, transfers),
            _grants_match_subsidies(grants, transfers),
            _applied_once(transfers),
            _check("well_formed", malformed, "every ledger item has the attributes it needs", "ledger items that cannot be read"),
        ]
    )


def _require(item: dict[str, Any], kind: type, *names: str) -> None:
    """The attributes a check reads, present and of their type (a bool is no number here)."""
    for name in names:
        if not isinstance(item[name], kind) or isinstance(item[name], bool):
            raise TypeError(f"{name} is not a {kind.__name__}")


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
        if t.state is TransferState.VOIDED:
            continue  # a voided hold applied nothing (a failed payout may be tried again)
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


AUDIT_SCANS_MAX = 3


def audit_store(store: Any, scans_max: int = AUDIT_SCANS_MAX) -> AuditReport:
    """`audit` over a consistent scan of the store's table.

    A scan reads page by page, so a transaction that lands between two pages can look like
    corruption; under live traffic the scan is repeated, and a check fails only if it failed in
    every scan (real corruption stays put; a passing write does not).
    """
    reports = []
    for _scan in range(scans_max):
        report = audit(store.scan())
        if report.ok:
            return report
        reports.append(report)
    checks = []
    for index, last in enumerate(reports[-1].checks):
        passed = next((r.checks[index] for r in reports if r.checks[index].ok), None)
        checks.append(passed or last)
    return AuditReport(checks)
