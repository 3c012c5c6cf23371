"""Invoices in: issue one for an owner, book it once it is paid, expire it when it is not.

A notification only names a payment hash; `settle` asks the backend (`Lightning.lookup_invoice`)
what was paid and books that, once, in one transaction: the invoice row pending|expired → paid
(conditional), the transfer `invoice:<hash>` from Lightning clearing to the owner's account, any
excess above the invoice's amount as refundable (`invoice:<hash>:excess`), and the owner's own
rows (`InvoiceOwner.book`). Then the owner takes its next step (`InvoiceOwner.paid`), idempotently:
a redelivered message that finds the row paid calls it again, so a crash between the booking and
the next step is healed by the retry.

Owners (donations, jobs, sessions) are found by kind through one dispatch point, `owners`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol
from urllib.parse import urlencode

from timmy.clock import Clock
from timmy.config import Settings
from timmy.errors import InvalidInput
from timmy.ledger.ledger import Batch, ConditionFailed, Ledger, Limit, decimal_seconds
from timmy.ledger.model import LIGHTNING_CLEARING, SATS_MAX, TransferCode
from timmy.payments.model import (
    INDEX_ATTRIBUTES,
    INVOICE_TRANSITIONS,
    INVOICES_OPEN_PARTITION,
    InvoiceRecord,
    InvoiceStatus,
    invoice_key,
    sources_of,
)
from timmy.ports.lightning import InvoiceState, Lightning, LightningUnavailable

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/api/webhooks/lightning"
OWNER_ID_CHARS = 32  # hex of a 128-bit random id
SWEEP_PAGE_SIZE = 100


class InvoiceOwner(Protocol):
    """What an invoice pays for: a donation, a job, a session."""

    kind: str

    def account_id(self, invoice: InvoiceRecord) -> str:
        """The account the paid amount is credited to."""
        ...

    def transfer_code(self, invoice: InvoiceRecord) -> str: ...

    def excess_account_id(self, invoice: InvoiceRecord) -> str:
        """Where sats paid above the invoice's amount go (refundable)."""
        ...

    def book(self, batch: Batch, invoice: InvoiceRecord) -> None:
        """The owner's own changes, in the booking transaction (a state change of its row)."""
        ...

    def paid(self, invoice: InvoiceRecord) -> None:
        """The next step once booked (enqueue the work, activate the session); idempotent."""
        ...

    def expired(self, invoice: InvoiceRecord) -> None:
        """The invoice expired unpaid; idempotent."""
        ...


class OwnerDefaults:
    """What an owner does not say otherwise: a payment is an `invoice_payment` credited, excess
    included (refundable with the rest), to the owner's own account; it has no rows to change in
    the booking transaction and nothing to do after it, or after an expiry."""

    def account_id(self, invoice: InvoiceRecord) -> str:
        raise NotImplementedError

    def excess_account_id(self, invoice: InvoiceRecord) -> str:
        return self.account_id(invoice)

    def transfer_code(self, invoice: InvoiceRecord) -> str:
        return TransferCode.INVOICE_PAYMENT

    def book(self, batch: Batch, invoice: InvoiceRecord) -> None:
        return None

    def paid(self, invoice: InvoiceRecord) -> None:
        return None

    def expired(self, invoice: InvoiceRecord) -> None:
        return None


class NotYetPaid(Exception):
    """The backend does not (yet) say the invoice is paid: the notification is retried later."""


class SettleOutcome(StrEnum):
    BOOKED = "booked"
    ALREADY_BOOKED = "already_booked"  # a replay, or a twin delivery won: booked once
    UNKNOWN = "unknown"  # not an invoice of ours (or not of the owner the notification named)
    NOT_PAID = "not_paid"  # the backend says it expired unpaid


@dataclass
class InvoiceSweep:
    """What one sweep of the open invoices did: paid ones booked (their notification never came),
    unpaid ones expired, ones still payable, and the ones left for the next run (an error)."""

    booked: int = 0
    expired: int = 0
    still_open: int = 0
    failed: list[str] = field(default_factory=list)


def new_owner_id() -> str:
    return secrets.token_hex(OWNER_ID_CHARS // 2)


def check_amount(amount_sats: object, maximum: int, what: str) -> int:
    """An invoice amount: a whole number of sats (an int, not a bool) from 1 to `maximum`, or InvalidInput."""
    if not isinstance(amount_sats, int) or isinstance(amount_sats, bool) or not 1 <= amount_sats <= min(maximum, SATS_MAX):
        raise InvalidInput(f"{what} is a whole number of sats from 1 to {min(maximum, SATS_MAX)}", code="invalid_amount")
    return amount_sats


class Invoices:
    def __init__(
        self,
        ledger: Ledger,
        lightning: Lightning,
        clock: Clock,
        settings: Settings,
        webhook_secret: Callable[[], str],
        owners: Callable[[str], InvoiceOwner | None],
    ):
        self.ledger = ledger
        self.lightning = lightning
        self.clock = clock
        self.settings = settings
        self._webhook_secret = webhook_secret
        self._owners = owners

    # --- the webhook's cheap check ----------------------------------------------------------

    def webhook_token(self, owner: str) -> str:
        """The token in the webhook URL of `owner`'s invoices: refuses forged traffic cheaply. It is
        not what makes settlement safe (the backend's lookup is)."""
        key = self._webhook_secret().encode()
        return hmac.new(key, f"lightning-webhook:{owner}".encode(), hashlib.sha256).hexdigest()[:32]

    def webhook_token_valid(self, owner: str, token: str) -> bool:
        return hmac.compare_digest(self.webhook_token(owner), token)

    # --- issuing ------------------------------------------------------------------------------

    def issue(self, owner_kind: str, owner_id: str, amount_sats: int, memo: str, base_url: str) -> InvoiceRecord:
        """A new invoice at the backend for `owner_kind:owner_id`; the caller stores it with `add`
        in the transaction that creates the owner's row."""
        owner = f"{owner_kind}:{owner_id}"
        query = urlencode({"owner": owner, "token": self.webhook_token(owner)})
        invoice = self.lightning.create_invoice(
            amount_sats, memo, self.settings.invoice_expiry_seconds, owner, f"{base_url.rstrip('/')}{WEBHOOK_PATH}?{query}"
        )
        return InvoiceRecord(
            payment_hash=invoice.payment_hash,
            bolt11=invoice.bolt11,
            owner_kind=owner_kind,
            owner_id=owner_id,
            amount_sats=amount_sats,
            created_at=self.clock.now(),
            expires_at=invoice.expires_at,
        )

    @staticmethod
    def add(batch: Batch, invoice: InvoiceRecord) -> None:
        batch.put_once(f"invoice:{invoice.payment_hash}", invoice.item())

    def get(self, payment_hash: str) -> InvoiceRecord | None:
        item = self.ledger.item(invoice_key(payment_hash))
        return InvoiceRecord.from_item(item) if item else None

    # --- settling -----------------------------------------------------------------------------

    def settle(self, payment_hash: str, owner: str | None = None) -> SettleOutcome:
        """Book the payment of `payment_hash` once, as the backend reports it. Raises NotYetPaid
        while the backend says pending and LightningUnavailable when it does not answer (both
        retried by the queue)."""
        invoice = self.get(payment_hash)
        if invoice is None or (owner is not None and owner != invoice.owner):
            log.warning("notification for an invoice that is not ours", extra={"payment_hash": payment_hash, "owner": owner})
            return SettleOutcome.UNKNOWN
        if invoice.status is InvoiceStatus.PAID:
            self._next_step(invoice)
            return SettleOutcome.ALREADY_BOOKED
        seen = self.lightning.lookup_invoice(payment_hash)
        if seen is None:
            log.warning("the backend does not know an invoice we issued", extra={"payment_hash": payment_hash})
            return SettleOutcome.UNKNOWN
        if seen.state is InvoiceState.PENDING:
            raise NotYetPaid(f"invoice {payment_hash} is not paid yet")
        if seen.state is InvoiceState.EXPIRED:
            return SettleOutcome.NOT_PAID
        return self._book(invoice, seen.received_sats)

    def _book(self, invoice: InvoiceRecord, received_sats: int) -> SettleOutcome:
        owner = self._owner(invoice)
        booked = invoice.amount_sats if received_sats >= invoice.amount_sats else 0  # short: all of it refundable
        excess = received_sats - booked
        h = invoice.payment_hash
        batch = self.ledger.batch()
        if booked:
            code = owner.transfer_code(invoice)
            batch.transfer(f"invoice:{h}", LIGHTNING_CLEARING, owner.account_id(invoice), booked, code, payment_hash=h, owner=invoice.owner)
        if excess:
            batch.transfer(
                f"invoice:{h}:excess",
                LIGHTNING_CLEARING,
                owner.excess_account_id(invoice),
                excess,
                TransferCode.OVERPAYMENT,
                payment_hash=h,
                owner=invoice.owner,
            )
        paid = replace(invoice, status=InvoiceStatus.PAID, received_sats=received_sats, paid_at=batch.now)
        batch.transition(
            f"invoice:{h}",
            invoice_key(h),
            sources_of(INVOICE_TRANSITIONS, InvoiceStatus.PAID),
            InvoiceStatus.PAID.value,
            set_={"received_sats": received_sats, "excess_sats": excess, "paid_at": decimal_seconds(batch.now)},
            remove=INDEX_ATTRIBUTES,
        )
        if booked:
            owner.book(batch, paid)
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if failed.ids(Limit.STATE) or failed.ids(Limit.TRANSFER_EXISTS):
                current = self.get(h)
                if current is not None and current.status is InvoiceStatus.PAID:  # a twin delivery booked it
                    self._next_step(current)
                    return SettleOutcome.ALREADY_BOOKED
            raise
        self._next_step(paid)
        return SettleOutcome.BOOKED

    def _next_step(self, invoice: InvoiceRecord) -> None:
        if invoice.received_sats >= invoice.amount_sats:
            self._owner(invoice).paid(invoice)

    def _owner(self, invoice: InvoiceRecord) -> InvoiceOwner:
        owner = self._owners(invoice.owner_kind)
        if owner is None:
            raise LookupError(f"no owner of kind {invoice.owner_kind!r} is registered")
        return owner

    # --- the sweeper --------------------------------------------------------------------------

    def sweep(self, pages_max: int = 10) -> InvoiceSweep:
        """Every open invoice: book the paid ones whose notification never came, expire the unpaid
        ones past their expiry (and tell their owners). A backend that does not answer leaves the
        invoice for the next run; the sweep carries on."""
        report = InvoiceSweep()
        for item in self.ledger.each_listed(INVOICES_OPEN_PARTITION, SWEEP_PAGE_SIZE, pages_max):
            self._sweep_one(InvoiceRecord.from_item(item), report)
        return report

    def _sweep_one(self, listed: InvoiceRecord, report: InvoiceSweep) -> None:
        h = listed.payment_hash
        try:
            invoice = self.get(h)  # the index may lag: read the row itself
            if invoice is None or invoice.status is not InvoiceStatus.PENDING:
                return
            seen = self.lightning.lookup_invoice(h)
            if seen is not None and seen.state is InvoiceState.PAID:
                if self._book(invoice, seen.received_sats) is SettleOutcome.BOOKED:
                    report.booked += 1
                return
            backend_expired = seen is None or seen.state is InvoiceState.EXPIRED
            if self.clock.now() < invoice.expires_at and not backend_expired:
                report.still_open += 1
                return
            if self._expire(invoice):
                report.expired += 1
        except (LightningUnavailable, ConditionFailed) as error:
            log.warning("invoice left for the next sweep", extra={"payment_hash": h, "error": str(error)})
            report.failed.append(h)

    def _expire(self, invoice: InvoiceRecord) -> bool:
        batch = self.ledger.batch()
        batch.transition(
            f"invoice:{invoice.payment_hash}",
            invoice_key(invoice.payment_hash),
            sources_of(INVOICE_TRANSITIONS, InvoiceStatus.EXPIRED),
            InvoiceStatus.EXPIRED.value,
            remove=INDEX_ATTRIBUTES,
        )
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            return False  # paid or expired meanwhile
        self._owner(invoice).expired(replace(invoice, status=InvoiceStatus.EXPIRED))
        return True
