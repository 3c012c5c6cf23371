"""An invoice as every route that issues one answers it (`{bolt11, payment_hash, amount_sats,
expires_at}`); kept apart from the route modules so a handler imports only this."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from timmy.payments.model import InvoiceRecord


def invoice_view(invoice: InvoiceRecord) -> dict[str, Any]:
    return {
        "bolt11": invoice.bolt11,
        "payment_hash": invoice.payment_hash,
        "amount_sats": invoice.amount_sats,
        "expires_at": int(invoice.expires_at),
    }
