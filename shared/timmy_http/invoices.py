"""An invoice as every route that issues one answers it (`{bolt11, payment_hash, amount_sats,
expires_at}`), and a payout as every route that pays one does; kept apart from the route modules so
a handler imports only this."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from timmy_http.answers import Answer

if TYPE_CHECKING:
    from timmy.payments.model import InvoiceRecord, PayoutRecord


class InvoiceView(Answer):
    bolt11: str
    payment_hash: str
    amount_sats: int
    expires_at: int = Field(description="epoch seconds: the invoice cannot be paid after")


class PayoutView(Answer):
    payout_id: str
    status: str = Field(description="pending (its outcome is not known yet), paid or failed")
    amount_sats: int
    payment_hash: str


def invoice_view(invoice: InvoiceRecord) -> dict[str, Any]:
    return InvoiceView(
        bolt11=invoice.bolt11, payment_hash=invoice.payment_hash, amount_sats=invoice.amount_sats, expires_at=int(invoice.expires_at)
    ).model_dump()


def payout_view(payout: PayoutRecord) -> dict[str, Any]:
    return PayoutView(
        payout_id=payout.payout_id, status=payout.answer_status, amount_sats=payout.amount_sats, payment_hash=payout.payment_hash
    ).model_dump()
