"""The invariant checker of contract section 4: its six invariants and a seventh, `well_formed` (every
ledger item readable), over the whole table, each reported by name with the ids that break it. `GET /api/admin/audit` runs it, and so do the tests after every
test that touches the ledger."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from timmy.errors import TransactionCancelled
from timmy.ledger.model import Account, Transfer, TransferCode, TransferState, account_key, must_not_overdraw
from timmy.ports.store import Store

TRANSACT_GET_MAX = 100  # DynamoDB's limit on one TransactGetItems

OFFENDERS_SHOWN_MAX = 20


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    offending_ids: list[str] = field(default_factory=list)
    unsettled_ids: list[str] = field(default_factory=list)  # suspects a live audit could neither confirm nor clear

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "offending_ids": self.offending_ids[:OFFENDERS_SHOWN_MAX],
            "unsettled_ids": self.unsettled_ids[:OFFENDERS_SHOWN_MAX],
        }


@dataclass
class AuditReport:
    checks: list[Check]
    recheck: Recheck | None = None  # what a live audit re-read after a torn first scan

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[str]:
        return [check.name for check in self.checks if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checks": [check.as_dict() for check in self.checks],
            "recheck": self.recheck.as_dict() if self.recheck else None,
        }


# The invariants, in the order they run: what holding each means, and what breaking it means
# (`{…}` filled with the figures the check found).
INVARIANTS: dict[str, tuple[str, str]] = {
    "balanced": ("Σ credits − debits is 0, posted and pending", "Σ credits − debits is posted {posted}, pending {pending}"),
    "non_negative": (
        "no pool, escrow or session account is below 0, posted or available",
        "accounts below 0 (or whose available balance disagrees with their counters)",
    ),
    "accounts_match_transfers": ("every account equals the sum of its transfers", "accounts that differ from the sum of their transfers"),
    "daily_budgets": (
        "for every identity and UTC day, absorbed + reserved ≤ that day's budget (and matches its transfers)",
        "identity-days over budget or out of step with their subsidy transfers",
    ),
    "grants_match_subsidies": (
        "every absorbed sat has exactly one grant row; Σ grants = Σ subsidies = {total_subsidy}",
        "grant rows and posted subsidies disagree (Σ grants {total_grants}, Σ subsidies {total_subsidy})",
    ),
    "applied_once": ("no transfer id, payment hash or refund is applied twice", "movements applied more than once"),
    "well_formed": ("every ledger item has the attributes it needs", "ledger items that cannot be read"),
}


def _check(name: str, offenders: list[str], **figures: int) -> Check:
    good, bad = INVARIANTS[name]
    return Check(name, not offenders, (bad if offenders else good).format(**figures), sorted(offenders))


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
            _check("well_formed", malformed),
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
    return _check("balanced", offenders, posted=posted, pending=pending)


def _non_negative(accounts: dict[str, Account], stored_available: dict[str, int]) -> Check:
    offenders = []
    for account_id, account in accounts.items():
        out_of_step = stored_available[account_id] != account.computed_available_sats
        overdrawn = must_not_overdraw(account_id) and (account.posted_balance_sats < 0 or account.computed_available_sats < 0)
        if out_of_step or overdrawn:
            offenders.append(account_id)
    return _check("non_negative", offenders)


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
    return _check("accounts_match_transfers", offenders)


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
    return _check("daily_budgets", offenders)


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
    return _check("grants_match_subsidies", offenders, total_grants=total_grants, total_subsidy=total_subsidy)


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
    return _check("applied_once", offenders)


# --- the live audit ------------------------------------------------------------------------

RECHECK_ROUNDS_MAX = 5
RECHECK_PAUSE_SECONDS = 0.02
SNAPSHOT_ATTEMPTS_MAX = 5
# The checks that relate items one transaction writes together: a scan (read page by page, not a
# snapshot) that a transaction lands in the middle of can fail them with no corruption at all.
# The other checks read one item at a time (or immutable facts), so a scan cannot tear them.
TORN_SENSITIVE = ("balanced", "accounts_match_transfers", "daily_budgets", "grants_match_subsidies")


@dataclass
class Recheck:
    """What the live audit re-read after a first scan failed, and what came of each suspect
    (`<check>:<id>`): confirmed (corrupt), cleared (the scan was torn by live traffic), or unsettled
    (it changed in every re-check, so neither could be shown)."""

    suspects: list[str] = field(default_factory=list)
    rounds: int = 0
    confirmed: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    unsettled: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "suspects": self.suspects[:OFFENDERS_SHOWN_MAX],
            "confirmed": self.confirmed[:OFFENDERS_SHOWN_MAX],
            "cleared": self.cleared[:OFFENDERS_SHOWN_MAX],
            "unsettled": self.unsettled[:OFFENDERS_SHOWN_MAX],
            "counts": {name: len(getattr(self, name)) for name in ("suspects", "confirmed", "cleared", "unsettled")},
        }


def audit_store(
    store: Store,
    rounds_max: int = RECHECK_ROUNDS_MAX,
    sleep: Callable[[float], None] = time.sleep,
) -> AuditReport:
    """`audit` over a consistent scan of the store's table, safe to run on a live system.

    A scan reads page by page, so a transaction landing between two pages can look like
    corruption. When the first scan fails a check that can be torn that way, only its suspects are
    re-checked, each until it holds still:

    - an account or an identity's day counter (`accounts_match_transfers`, `daily_budgets`): read
      consistently before and after a fresh scan; when all three copies are the same (every update
      bumps its `version`, so "the same" means no transaction touched it meanwhile), every transfer
      that moves it was also still, and the fresh scan's verdict on it is exact;
    - a grant (`grants_match_subsidies`): a hold and its grant row are written once, together, so
      a fresh scan after the one that was torn sees both or neither: its verdict is exact;
    - `balanced`: every account in one TransactGetItems snapshot (serializable against write
      transactions), complete when the fresh scan finds no account the snapshot missed.

    A check fails only for confirmed suspects; a suspect that moved in every round is `unsettled`
    (reported, not failed: run the audit again when traffic is lower). `report.recheck` says what
    was re-read and what came of it.
    """
    items = list(store.scan())
    report = audit(items)
    if report.ok:
        return report
    checks = {check.name: check for check in report.checks}
    recheck = Recheck()
    suspects: dict[str, dict[str, tuple[str, str] | None]] = {}
    for name in TORN_SENSITIVE:
        check = checks[name]
        if not check.ok:
            suspects[name] = {offender: _suspect_key(name, offender) for offender in check.offending_ids}
            recheck.suspects += [f"{name}:{offender}" for offender in check.offending_ids]
    if "balanced" in suspects:
        suspects["balanced"] = {"all accounts": None}
    known_accounts = {(i["pk"], i["sk"]) for i in items if i.get("type") == "account" and "pk" in i and "sk" in i}
    confirmed: dict[str, list[str]] = {name: [] for name in suspects}
    for round_ in range(rounds_max):
        if not any(suspects.values()):
            break
        if round_:
            sleep(random.uniform(0, RECHECK_PAUSE_SECONDS * 2**round_))
        keys = [key for ids in suspects.values() for key in ids.values() if key is not None]
        snapshot = _snapshot(store, sorted(known_accounts)) if suspects.get("balanced") else None
        before = store.batch_get(keys) if keys else {}
        scanned = list(store.scan())
        after = store.batch_get(keys) if keys else {}
        recheck.rounds += 1
        by_key = {(i["pk"], i["sk"]): i for i in scanned if "pk" in i and "sk" in i}
        fresh = {check.name: set(check.offending_ids) for check in audit(scanned).checks}
        for name, ids in suspects.items():
            for offender, key in list(ids.items()):
                if name == "balanced":
                    accounts_now = {k for k, i in by_key.items() if i.get("type") == "account"}
                    if snapshot is None or not accounts_now <= known_accounts:
                        known_accounts |= accounts_now  # an account the snapshot missed: again, with it
                        continue
                    balanced = _balanced(_accounts(snapshot.values()))
                    still_bad = not balanced.ok
                    if still_bad:  # name the sums, as the first scan did
                        del ids[offender]
                        confirmed[name] += balanced.offending_ids
                        recheck.confirmed += [f"{name}:{o}" for o in balanced.offending_ids]
                        continue
                elif name == "grants_match_subsidies":
                    still_bad = offender in fresh[name]
                else:
                    assert key is not None
                    if not before.get(key) == after.get(key) == by_key.get(key):
                        continue  # it moved during the re-check: again
                    still_bad = offender in fresh[name]
                del ids[offender]
                if still_bad:
                    confirmed[name].append(offender)
                    recheck.confirmed.append(f"{name}:{offender}")
                else:
                    recheck.cleared.append(f"{name}:{offender}")
    for name, ids in suspects.items():
        recheck.unsettled += [f"{name}:{offender}" for offender in ids]
        checks[name] = _rechecked(checks[name], confirmed[name], sorted(ids))
    return AuditReport([checks[check.name] for check in report.checks], recheck)


def _suspect_key(name: str, offender: str) -> tuple[str, str] | None:
    """The item a suspect's verdict hangs on: an account, or an identity's day counter."""
    if name == "accounts_match_transfers":
        return account_key(offender)
    if name == "daily_budgets":
        pubkey, day = offender.rsplit(":", 1)
        return f"IDENTITY#{pubkey}", f"DAY#{day}"  # free_tier.service.budget_day_key's layout
    return None


def _snapshot(store: Store, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]] | None:
    """The items as one snapshot, or None (too many for one, or write transactions kept conflicting)."""
    if len(keys) > TRANSACT_GET_MAX:
        return None
    for attempt in range(SNAPSHOT_ATTEMPTS_MAX):
        try:
            return dict(store.transact_get(keys))
        except TransactionCancelled:
            time.sleep(random.uniform(0, RECHECK_PAUSE_SECONDS * 2**attempt))
    return None


def _accounts(items: Iterable[dict[str, Any]]) -> dict[str, Account]:
    return {item["account_id"]: Account.from_item(item, item["account_id"]) for item in items if "account_id" in item}


def _rechecked(first: Check, confirmed: list[str], unsettled: list[str]) -> Check:
    """A torn-sensitive check after its re-check: failed by confirmed offenders only."""
    detail = first.detail if confirmed else "no corruption confirmed: a first scan torn by live traffic was re-checked"
    if unsettled:
        detail += f"; {len(unsettled)} still changing in every re-check, not confirmed either way: run the audit again"
    return Check(first.name, not confirmed, detail, sorted(confirmed), unsettled)
