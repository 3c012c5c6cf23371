"""The ledger's vocabulary: accounts, transfers and their item layout on the single table.

As in TigerBeetle, accounts and transfers are the whole vocabulary. An account keeps four
counters (`debits_pending`, `debits_posted`, `credits_pending`, `credits_posted`) and, because a
DynamoDB condition cannot add attributes, a fifth kept in step in the same update:
`available_sats = credits_posted - debits_posted - debits_pending`. Accounts that must not go
negative carry `available_sats >= amount` as the condition of every debit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from timmy.errors import InvalidInput
from timmy.money import SATS_MAX

# --- amounts ------------------------------------------------------------------------------


def require_sats(value: object, what: str, minimum: int = 0) -> int:
    """`value` as an amount of sats (an int, not a bool, within [minimum, SATS_MAX]), or InvalidInput."""
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= SATS_MAX:
        raise InvalidInput(f"{what} is a whole number of sats from {minimum} to {SATS_MAX}, not {value!r}")
    return value


# --- accounts -----------------------------------------------------------------------------

OPERATOR_EQUITY = "operator-equity"
POOL = "pool"
OPERATOR_REVENUE = "operator-revenue"
REFUNDS_PAYABLE = "refunds-payable"
LIGHTNING_CLEARING = "lightning-clearing"

# Accounts whose debits must never exceed their credits (TigerBeetle's flag of that name).
_NO_OVERDRAFT_PREFIXES = ("escrow:", "session:")
_NO_OVERDRAFT_ACCOUNTS = frozenset({POOL})


def must_not_overdraw(account_id: str) -> bool:
    """Whether debits of `account_id` are conditioned on its available balance."""
    return account_id in _NO_OVERDRAFT_ACCOUNTS or account_id.startswith(_NO_OVERDRAFT_PREFIXES)


def escrow_account(job_id: str) -> str:
    return f"escrow:{job_id}"


def session_account(session_id: str) -> str:
    return f"session:{session_id}"


def account_key(account_id: str) -> tuple[str, str]:
    return f"ACCOUNT#{account_id}", "ACCOUNT"


@dataclass(frozen=True)
class Account:
    account_id: str
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    available_sats: int = 0

    @property
    def posted_balance_sats(self) -> int:
        """Credits minus debits, posted only (what the account holds)."""
        return self.credits_posted - self.debits_posted

    @property
    def computed_available_sats(self) -> int:
        """Posted balance less pending debits (what the account can still spend)."""
        return self.credits_posted - self.debits_posted - self.debits_pending

    @classmethod
    def from_item(cls, item: dict[str, Any] | None, account_id: str) -> Account:
        if item is None:
            return cls(account_id)
        return cls(
            account_id=account_id,
            debits_pending=item.get("debits_pending", 0),
            debits_posted=item.get("debits_posted", 0),
            credits_pending=item.get("credits_pending", 0),
            credits_posted=item.get("credits_posted", 0),
            available_sats=item.get("available_sats", 0),
        )


# --- transfers ----------------------------------------------------------------------------


class TransferCode(StrEnum):
    """What kind of movement a transfer is."""

    POOL_SEED = "pool_seed"  # equity -> pool, once
    POOL_TOPUP = "pool_topup"  # equity -> pool, an operator donation
    SUBSIDY = "subsidy"  # pool -> revenue, the pool paying for a trusted identity's work
    POOL_CREDIT = "pool_credit"  # revenue -> pool, POOL_CREDIT_PCT of a paid charge
    POOL_DONATION = "pool_donation"  # lightning clearing -> pool, a paid donation invoice
    INVOICE_PAYMENT = "invoice_payment"  # lightning clearing -> an owner's account (escrow, session), a paid invoice
    OVERPAYMENT = "overpayment"  # lightning clearing -> refunds payable, what a payer sent above an invoice's amount
    PAYOUT = "payout"  # what was owed -> lightning clearing, an outgoing payment (a hold while in flight)
    CHARGE = "charge"  # a job's escrow -> operator revenue, the actual cost the caller pays
    LIGHTNING_FEE = "lightning_fee"  # operator revenue -> lightning clearing, the routing fee of a payout


class TransferState(StrEnum):
    POSTED = "posted"
    PENDING = "pending"
    VOIDED = "voided"


PENDING_INDEX_PARTITION = "PENDING"


def transfer_key(transfer_id: str) -> tuple[str, str]:
    return f"TRANSFER#{transfer_id}", "TRANSFER"


@dataclass(frozen=True)
class Transfer:
    """An immutable movement of `amount_sats` from `debit_account_id` to `credit_account_id`.

    A pending transfer (a hold) later resolves exactly once: posted for `posted_sats` ≤ its
    amount (the rest released), or voided. Its `state` and `posted_sats` are the only
    attributes that ever change, each under a condition on the state.
    """

    transfer_id: str
    debit_account_id: str
    credit_account_id: str
    amount_sats: int
    code: str
    state: TransferState
    created_at: float
    posted_sats: int | None = None
    expires_at: float | None = None
    resolved_at: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_posted_sats(self) -> int:
        """The sats this transfer has posted to both accounts."""
        if self.state is not TransferState.POSTED:
            return 0
        return self.amount_sats if self.posted_sats is None else self.posted_sats

    @property
    def pending_sats(self) -> int:
        return self.amount_sats if self.state is TransferState.PENDING else 0

    CORE_ATTRIBUTES: ClassVar[frozenset[str]] = frozenset(
        {"pk", "sk", "type", "transfer_id", "debit_account_id", "credit_account_id", "amount_sats", "code", "state"}
        | {"created_at", "posted_sats", "expires_at", "resolved_at", "gsi1pk", "gsi1sk", "ttl"}
    )

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Transfer:
        return cls(
            transfer_id=item["transfer_id"],
            debit_account_id=item["debit_account_id"],
            credit_account_id=item["credit_account_id"],
            amount_sats=item["amount_sats"],
            code=item["code"],
            state=TransferState(item["state"]),
            created_at=float(item["created_at"]),
            posted_sats=item.get("posted_sats"),
            expires_at=float(item["expires_at"]) if item.get("expires_at") is not None else None,
            resolved_at=float(item["resolved_at"]) if item.get("resolved_at") is not None else None,
            meta={k: v for k, v in item.items() if k not in cls.CORE_ATTRIBUTES},
        )

    def same_request(self, other: Transfer) -> bool:
        """Whether a replay asked for the same movement (ids match; parameters must too)."""
        return (
            self.debit_account_id == other.debit_account_id
            and self.credit_account_id == other.credit_account_id
            and self.amount_sats == other.amount_sats
            and self.code == other.code
        )
