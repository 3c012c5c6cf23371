"""The rows of Lightning money on the single table: invoices Timmy issued and payouts it made.

Their states move only forward, under a condition on the state (`Batch.transition`), in the same
transaction as the ledger transfers they cause. The transitions are data, here, in one place.
Open rows carry a sparse index entry (gsi1) the sweeper pages through; closing a row removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeVar

from timmy.clock import iso
from timmy.ledger.rows import Row, row_key

INVOICES_OPEN_PARTITION = "INVOICES_OPEN"
PAYOUTS_OPEN_PARTITION = "PAYOUTS_OPEN"
INDEX_ATTRIBUTES = ("gsi1pk", "gsi1sk")


class InvoiceStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"


class PayoutStatus(StrEnum):
    PAYING = "paying"  # claimed: the payment was (or is about to be) sent; its outcome is not known yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # definitely not paid: the hold went back to what was owed


# Where each state may go. A payment that arrives after its invoice expired is still booked: the
# sats are ours (the owner decides what they buy, e.g. refundable for an expired job).
INVOICE_TRANSITIONS: dict[InvoiceStatus, frozenset[InvoiceStatus]] = {
    InvoiceStatus.PENDING: frozenset({InvoiceStatus.PAID, InvoiceStatus.EXPIRED}),
    InvoiceStatus.EXPIRED: frozenset({InvoiceStatus.PAID}),
    InvoiceStatus.PAID: frozenset(),
}
PAYOUT_TRANSITIONS: dict[PayoutStatus, frozenset[PayoutStatus]] = {
    PayoutStatus.PAYING: frozenset({PayoutStatus.SUCCEEDED, PayoutStatus.FAILED}),
    PayoutStatus.SUCCEEDED: frozenset(),
    PayoutStatus.FAILED: frozenset(),
}


PayoutAnswer = Literal["pending", "paid", "failed"]
PAYOUT_ANSWERS: dict[PayoutStatus, PayoutAnswer] = {
    PayoutStatus.PAYING: "pending",
    PayoutStatus.SUCCEEDED: "paid",
    PayoutStatus.FAILED: "failed",
}


S = TypeVar("S", bound=StrEnum)


def sources_of(transitions: dict[S, frozenset[S]], target: S) -> list[str]:
    """The states a row may move to `target` from (the condition of that transition)."""
    return sorted(state.value for state, targets in transitions.items() if target in targets)


def payout_hash_key(payment_hash: str) -> tuple[str, str]:
    """One row per invoice Timmy pays: the same invoice is never claimed by two payouts."""
    return row_key("payout_hash", payment_hash)


@dataclass(frozen=True, kw_only=True)
class Bolt11Fields:
    """What an invoice row and a payout row both keep of the BOLT11 invoice they are about: its
    hash, its text, the sats it asks, and when the row was written (Timmy issued it, or claimed
    the payment of it), stored under the same names in both kinds of row. The records are built by
    keyword only: a dataclass puts a base's fields first, so a positional call would misplace them."""

    payment_hash: str
    bolt11: str
    amount_sats: int
    created_at: float


@dataclass(frozen=True, kw_only=True)
class InvoiceRecord(Row, Bolt11Fields, kind="invoice", id_field="payment_hash"):
    """An invoice Timmy issued for what its owner (`owner_kind:owner_id`) sells, as it was asked
    and as it was paid (`received_sats`, from the backend's word)."""

    owner_kind: str  # "donation", "job", "session"
    owner_id: str
    expires_at: float
    status: InvoiceStatus = InvoiceStatus.PENDING
    received_sats: int = 0
    paid_at: float | None = None

    @property
    def owner(self) -> str:
        return f"{self.owner_kind}:{self.owner_id}"

    def index_entry(self) -> tuple[str, str] | None:
        if self.status is not InvoiceStatus.PENDING:
            return None
        return INVOICES_OPEN_PARTITION, f"{iso(self.created_at)}#{self.payment_hash}"


@dataclass(frozen=True, kw_only=True)
class PayoutRecord(Row, Bolt11Fields, kind="payout", id_field="payout_id"):
    """A payment Timmy makes from what an account owes (a refund, a session's balance), claimed
    before it is sent and resolved once: a hold on `debit_account_id` while it is paying."""

    payout_id: str
    owner: str  # what the payout is for: "refund:job:<id>", "session:<id>", …
    debit_account_id: str  # the account the sats were owed from (a hold on it while paying)
    fee_limit_sats: int
    status: PayoutStatus = PayoutStatus.PAYING
    fee_sats: int = 0
    failure_reason: str | None = None
    resolved_at: float | None = None

    @property
    def hold_id(self) -> str:
        return f"payout:{self.payout_id}"

    @property
    def answer_status(self) -> PayoutAnswer:
        """The status a caller reads: `pending` while the outcome is unknown, then `paid` or `failed`."""
        return PAYOUT_ANSWERS[self.status]

    def index_entry(self) -> tuple[str, str] | None:
        if self.status is not PayoutStatus.PAYING:
            return None
        return PAYOUTS_OPEN_PARTITION, f"{iso(self.created_at)}#{self.payout_id}"


invoice_key = InvoiceRecord.key_of
payout_key = PayoutRecord.key_of
