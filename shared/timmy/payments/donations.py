"""Donations to the generosity pool: the first owner of invoices. Anyone may donate; once the
invoice is paid the sats are credited to the pool (`pool_donation`) by the settlement."""

from __future__ import annotations

from dataclasses import dataclass

from timmy.config import Settings
from timmy.errors import InvalidInput
from timmy.ledger.ledger import Ledger, decimal_seconds
from timmy.ledger.model import POOL, REFUNDS_PAYABLE, TransferCode
from timmy.payments import NOTE_CHARS_MAX
from timmy.payments.invoices import Invoices, OwnerDefaults, check_amount, new_owner_id
from timmy.payments.model import InvoiceRecord

DONATION_MEMO = "Timmy: a donation to the generosity pool"


@dataclass(frozen=True)
class Donation:
    donation_id: str
    amount_sats: int
    invoice: InvoiceRecord


class Donations(OwnerDefaults):
    kind = "donation"

    def __init__(self, ledger: Ledger, invoices: Invoices, settings: Settings):
        self.ledger = ledger
        self.invoices = invoices
        self.settings = settings

    def account_id(self, invoice: InvoiceRecord) -> str:
        return POOL

    def transfer_code(self, invoice: InvoiceRecord) -> str:
        return TransferCode.POOL_DONATION

    def excess_account_id(self, invoice: InvoiceRecord) -> str:
        return REFUNDS_PAYABLE  # the pool takes what was asked; more is refundable

    def create(self, amount_sats: object, note: str | None, base_url: str) -> Donation:
        amount = check_amount(amount_sats, self.settings.donation_max_sats, "amount_sats")
        if note is not None and len(note) > NOTE_CHARS_MAX:
            raise InvalidInput(f"note has at most {NOTE_CHARS_MAX} characters", code="invalid_note")
        donation_id = new_owner_id()
        invoice = self.invoices.issue(self.kind, donation_id, amount, DONATION_MEMO, base_url)
        batch = self.ledger.batch()
        self.invoices.add(batch, invoice)
        row = {
            "pk": f"DONATION#{donation_id}",
            "sk": "DONATION",
            "type": "donation",
            "donation_id": donation_id,
            "amount_sats": amount,
            "payment_hash": invoice.payment_hash,
            "created_at": decimal_seconds(batch.now),
        }
        if note:
            row["note"] = note
        batch.put_once(f"donation:{donation_id}", row)
        self.ledger.commit(batch)
        return Donation(donation_id, amount, invoice)
