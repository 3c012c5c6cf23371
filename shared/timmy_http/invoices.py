"""An invoice as every route that issues one answers it (`{bolt11, payment_hash, amount_sats,
expires_at}`), and a payout as every route that pays one does; kept apart from the route modules so
a handler imports only this."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from timmy.payments.model import InvoiceRecord, PayoutRecord


def invoice_view(invoice: InvoiceRecord) -> dict[str, Any]:
    return {
        "bolt11": invoice.bolt11,
        "payment_hash": invoice.payment_hash,
        "amount_sats": invoice.amount_sats,
        "expires_at": int(invoice.expires_at),
    }


def payout_view(payout: PayoutRecord) -> dict[str, Any]:
    return {
        "payout_id": payout.payout_id,
        "status": payout.answer_status,
        "amount_sats": payout.amount_sats,
        "payment_hash": payout.payment_hash,
    }
