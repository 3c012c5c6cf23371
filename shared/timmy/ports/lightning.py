"""The Lightning port: invoices in, payments out, and the backend's word on both.

A notification (webhook) only says "look at this payment hash"; what the domain books always comes
from `lookup_invoice` or `payment`, the backend's authenticated API. Adapters:
`timmy.adapters.lightning_simulated` (the local default) and `timmy.adapters.lightning_lnbits`.

Every amount is integer sats. Times are epoch seconds (float).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class InvoiceState(StrEnum):
    PENDING = "pending"  # unpaid, not yet expired
    PAID = "paid"  # settled: `received_sats` arrived
    EXPIRED = "expired"  # unpaid and past its expiry (or cancelled by the backend)


@dataclass(frozen=True)
class Invoice:
    """An invoice as the backend knows it."""

    payment_hash: str  # 64 lowercase hex
    bolt11: str
    amount_sats: int
    expires_at: float
    state: InvoiceState = InvoiceState.PENDING
    received_sats: int = 0  # what was paid (BOLT11 lets a payer pay more than the amount); 0 unless PAID
    paid_at: float | None = None


class PaymentState(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # definitely not paid: the sats may be given back
    IN_FLIGHT = "in_flight"  # not known yet: never pay again, track it


@dataclass(frozen=True)
class Payment:
    """An outgoing payment as the backend knows it."""

    payment_hash: str
    state: PaymentState
    amount_sats: int
    fee_sats: int = 0
    preimage: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class DecodedInvoice:
    """What a BOLT11 string says (signature checked)."""

    payment_hash: str
    amount_sats: int | None  # None: an invoice without an amount
    payee: str  # the node's public key, 66 hex
    created_at: float
    expires_at: float
    description: str | None
    currency: str  # bc, tb, bcrt, …


class LightningError(Exception):
    """The backend refused (a bad request: the outcome is known, nothing happened)."""


class LightningUnavailable(LightningError):
    """The backend did not answer, or answered with a server error: the outcome is unknown."""


class Lightning(Protocol):
    name: str  # "simulated", "lnbits", …

    def create_invoice(self, amount_sats: int, memo: str, expiry_seconds: int, owner: str, webhook_url: str) -> Invoice:
        """A new invoice for `amount_sats`; `owner` ("donation:<id>", "job:<id>", …) is what it pays
        for, carried where the backend allows it (the invoice's extra data). The backend notifies
        `webhook_url` (Timmy's `POST /api/webhooks/lightning`, with its query) once it is paid."""
        ...

    def lookup_invoice(self, payment_hash: str) -> Invoice | None:
        """The backend's current view of one of our invoices; None when it does not know the hash."""
        ...

    def pay(self, bolt11: str, amount_sats: int, fee_limit_sats: int) -> Payment:
        """Pay `bolt11` (whose amount the caller has checked is `amount_sats`), spending at most
        `fee_limit_sats` in fees. A timeout or an unknown outcome raises LightningUnavailable: the
        caller tracks the payment by hash (`payment`) and never pays the same invoice again blindly."""
        ...

    def payment(self, payment_hash: str) -> Payment | None:
        """The backend's current view of an outgoing payment; None when it never saw one."""
        ...

    def notified_hash(self, body: str, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """The payment hash a webhook notification names (its format is the backend's), or None.
        Nothing else in a notification is trusted."""
        ...
