"""Invoice and payout rows as the table stores them: the attributes are pinned, so rows written by
an earlier version still read, and a record read back from DynamoDB is the record written."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.ledger.rows import Row
from timmy.payments.model import InvoiceRecord, InvoiceStatus, PayoutRecord, PayoutStatus

CREATED_AT = 1_700_000_000.25  # 2023-11-14T22:13:20.250Z

PENDING_INVOICE = InvoiceRecord(
    payment_hash="ab" * 32,
    bolt11="lnbc2100n1invoice",
    owner_kind="job",
    owner_id="j1",
    amount_sats=210,
    created_at=CREATED_AT,
    expires_at=CREATED_AT + 600,
)
PAID_INVOICE = replace(PENDING_INVOICE, status=InvoiceStatus.PAID, received_sats=250, paid_at=CREATED_AT + 5.5)
PAYING_PAYOUT = PayoutRecord(
    payout_id="p1",
    owner="refund:job:j1",
    debit_account_id="ESCROW#job:j1",
    bolt11="lnbc500n1payout",
    payment_hash="ef" * 32,
    amount_sats=50,
    fee_limit_sats=3,
    created_at=CREATED_AT,
)
FAILED_PAYOUT = replace(PAYING_PAYOUT, status=PayoutStatus.FAILED, fee_sats=1, failure_reason="no route", resolved_at=CREATED_AT + 2)

PENDING_INVOICE_ITEM: dict[str, Any] = {
    "pk": "INVOICE#" + "ab" * 32,
    "sk": "INVOICE",
    "type": "invoice",
    "payment_hash": "ab" * 32,
    "bolt11": "lnbc2100n1invoice",
    "owner_kind": "job",
    "owner_id": "j1",
    "amount_sats": 210,
    "created_at": Decimal("1700000000.25"),
    "expires_at": Decimal("1700000600.25"),
    "state": "pending",
    "received_sats": 0,
    "gsi1pk": "INVOICES_OPEN",
    "gsi1sk": "2023-11-14T22:13:20.250Z#" + "ab" * 32,
}
PAYING_PAYOUT_ITEM: dict[str, Any] = {
    "pk": "PAYOUT#p1",
    "sk": "PAYOUT",
    "type": "payout",
    "payout_id": "p1",
    "owner": "refund:job:j1",
    "debit_account_id": "ESCROW#job:j1",
    "bolt11": "lnbc500n1payout",
    "payment_hash": "ef" * 32,
    "amount_sats": 50,
    "fee_limit_sats": 3,
    "created_at": Decimal("1700000000.25"),
    "state": "paying",
    "fee_sats": 0,
    "gsi1pk": "PAYOUTS_OPEN",
    "gsi1sk": "2023-11-14T22:13:20.250Z#p1",
}


def closed(open_item: dict[str, Any], **written: Any) -> dict[str, Any]:
    """An open row's attributes once it is closed: its index entry gone, `written` set."""
    return {name: value for name, value in open_item.items() if name not in ("gsi1pk", "gsi1sk")} | written


STORED: list[tuple[Row, dict[str, Any]]] = [
    (PENDING_INVOICE, PENDING_INVOICE_ITEM),
    (PAID_INVOICE, closed(PENDING_INVOICE_ITEM, state="paid", received_sats=250, paid_at=Decimal("1700000005.75"))),
    (PAYING_PAYOUT, PAYING_PAYOUT_ITEM),
    (
        FAILED_PAYOUT,
        closed(PAYING_PAYOUT_ITEM, state="failed", fee_sats=1, failure_reason="no route", resolved_at=Decimal("1700000002.25")),
    ),
]


@pytest.mark.parametrize(("record", "attributes"), STORED, ids=["pending-invoice", "paid-invoice", "paying-payout", "failed-payout"])
def test_a_record_is_stored_as_these_attributes_and_reads_back_whole(store: DynamoStore, record: Row, attributes: dict[str, Any]) -> None:
    assert record.item() == attributes
    assert store.put(record.item())
    stored = store.get(*record.key())
    assert stored == attributes
    assert type(record).from_item(stored) == record
