"""BOLT11 in and out, through the maintained `bolt11` library (signature checked, payee recovered).
Below the domain and the adapters alike: payouts check the invoices they pay with it, the simulated
node reads the ones it is asked to pay.

Imported lazily by the paths that need it: `bolt11` and `bitstring` cost ~60 ms of import.
"""

from __future__ import annotations

from timmy.errors import InvalidInput
from timmy.ports.lightning import DecodedInvoice

BOLT11_CHARS_MAX = 2_000  # a BOLT11 string with routing hints stays well under this


def decode(bolt11_text: object) -> DecodedInvoice:
    """What a BOLT11 invoice says, or InvalidInput (`invalid_invoice`) for anything that is not one."""
    if not isinstance(bolt11_text, str) or not 0 < len(bolt11_text) <= BOLT11_CHARS_MAX:
        raise InvalidInput(f"invoice must be a BOLT11 string of 1 to {BOLT11_CHARS_MAX} characters", code="invalid_invoice")
    import bolt11

    text = bolt11_text.strip()
    if text.lower().startswith("lightning:"):
        text = text[len("lightning:") :]
    try:
        invoice = bolt11.decode(text)
    except Exception:  # the library raises many types (bech32, bitstring, its own): all mean "not an invoice"
        raise InvalidInput("invoice is not a valid BOLT11 payment request", code="invalid_invoice") from None
    amount_sats: int | None = None
    if invoice.amount_msat is not None:
        if int(invoice.amount_msat) % 1000:
            raise InvalidInput("invoice asks for a fraction of a sat; ask for whole sats", code="invalid_invoice")
        amount_sats = int(invoice.amount_msat) // 1000
    if not invoice.payment_hash or not invoice.payee:
        raise InvalidInput("invoice has no payment hash or payee", code="invalid_invoice")
    return DecodedInvoice(
        payment_hash=invoice.payment_hash,
        amount_sats=amount_sats,
        payee=invoice.payee,
        created_at=float(invoice.date),
        expires_at=float(invoice.expiry_time),  # date + expiry (3600 s when the tag is absent)
        description=invoice.description,
        currency=invoice.currency,
    )
