"""Money in (contract sections 5 and 6, issue 11): a donation's invoice is booked once, from the
backend's word, however the notification arrives — twice, never, forged, too early, poisoned — and
the ledger's invariants hold after each test (the `table_name` fixture audits the table)."""

from __future__ import annotations

import json

import pytest

from local.template import resources
from tests.integration.payments.conftest import Lab, Notification
from timmy import messages
from timmy.ledger.model import POOL, REFUNDS_PAYABLE, TransferCode
from timmy.payments.invoices import NotYetPaid, SettleOutcome
from timmy.payments.model import InvoiceStatus


def _hash(donation: dict[str, object]) -> str:
    invoice = donation["invoice"]
    assert isinstance(invoice, dict)
    return str(invoice["payment_hash"])


def test_a_donation_is_credited_to_the_pool_once_when_its_notification_comes_twice(lab: Lab) -> None:
    before = lab.pool_sats()
    donation = lab.donate(21)
    invoice = donation["invoice"]
    assert isinstance(invoice, dict) and donation["status"] == "awaiting_payment" and donation["amount_sats"] == 21
    assert invoice["amount_sats"] == 21 and invoice["bolt11"].startswith("lnbcrt210n1")
    assert lab.services.invoices.get(_hash(donation)).status is InvoiceStatus.PENDING  # type: ignore[union-attr]

    lab.node.settle(str(invoice["bolt11"]))
    (notification,) = lab.sent
    assert lab.deliver(notification).status == 202
    assert lab.deliver(notification).status == 202  # LNbits delivers each webhook twice
    assert lab.settle_queue() == 2
    assert lab.pool_sats() == before + 21
    transfer = lab.services.ledger.require_transfer(f"invoice:{_hash(donation)}")
    assert (transfer.code, transfer.amount_sats, transfer.credit_account_id) == (TransferCode.POOL_DONATION, 21, POOL)
    assert lab.api.get("/api/pool").json["balance_sats"] == before + 21

    # The same SQS message again (at-least-once delivery): nothing more.
    lab.services.settlement_queue.send({"type": messages.INVOICE_NOTIFIED, "payment_hash": _hash(donation), "owner": None})
    assert lab.settle_queue() == 1
    assert lab.pool_sats() == before + 21


def test_forged_notifications_are_refused_or_book_nothing(lab: Lab) -> None:
    before = lab.pool_sats()
    donation = lab.donate(50)
    lab.node.settle(_hash(donation), notify=True)
    (real,) = lab.sent
    target = real.target
    assert lab.api.post(target.replace("token=", "token=0"), body=real.body).error_code == "invalid_webhook_token"
    assert lab.api.post(target.split("&token=")[0], body=real.body).status == 401
    garbage = lab.api.post(target, body=b'{"hello": "world"}')
    assert (garbage.status, garbage.error_code) == (400, "invalid_notification")
    # A valid token with another hash: queued, but the settlement finds no such invoice of that owner.
    assert lab.deliver(Notification(real.url, json.dumps({"payment_hash": "ab" * 32}).encode())).status == 202
    assert lab.settle_queue() == 1
    assert lab.pool_sats() == before
    assert lab.services.invoices.settle("ab" * 32) is SettleOutcome.UNKNOWN
    # The owner named by the URL must be the invoice's: another donation's token cannot settle it.
    other = lab.donate(5)
    assert lab.services.invoices.settle(_hash(other), owner=f"donation:{donation['donation_id']}") is SettleOutcome.UNKNOWN
    lab.deliver(real)
    lab.settle_queue()
    assert lab.pool_sats() == before + 50


def test_a_notification_before_the_backend_agrees_is_retried_then_booked_once(lab: Lab) -> None:
    before = lab.pool_sats()
    donation = lab.donate(30)
    h = _hash(donation)
    with pytest.raises(NotYetPaid):
        lab.services.invoices.settle(h)
    # Through the queue: the early message fails, stays on the queue, and is delivered again.
    lab.services.settlement_queue.send(
        {"type": messages.INVOICE_NOTIFIED, "payment_hash": h, "owner": f"donation:{donation['donation_id']}"}
    )
    assert lab.settle_queue(rounds_max=1) == 1
    assert lab.pool_sats() == before
    assert lab.sqs.approximate_counts("SettlementQueue") == (0, 1)  # in flight, not deleted
    lab.node.settle(h, notify=False)
    deadline_rounds = 0
    while lab.sqs.approximate_counts("SettlementQueue") != (0, 0) and deadline_rounds < 50:
        lab.settle_queue(rounds_max=1)  # the visibility timeout (1 s in tests) returns it
        deadline_rounds += 1
    assert lab.pool_sats() == before + 30
    assert lab.services.invoices.settle(h) is SettleOutcome.ALREADY_BOOKED


def test_the_sweeper_books_a_payment_whose_notification_never_came_once(lab: Lab) -> None:
    before = lab.pool_sats()
    donation = lab.donate(40)
    lab.node.settle(_hash(donation), notify=False)
    first = lab.services.invoices.sweep()
    assert (first.booked, first.expired) == (1, 0)
    again = lab.services.invoices.sweep()
    assert (again.booked, again.expired, again.still_open) == (0, 0, 0)  # it left the open index
    assert lab.pool_sats() == before + 40
    # The notification arriving late books nothing more.
    assert lab.services.invoices.settle(_hash(donation)) is SettleOutcome.ALREADY_BOOKED
    assert lab.pool_sats() == before + 40


def test_the_sweeper_expires_unpaid_invoices_and_a_late_payment_is_refused(lab: Lab) -> None:
    donation = lab.donate(10)
    waiting = lab.services.invoices.sweep()
    assert (waiting.still_open, waiting.expired) == (1, 0)
    lab.clock.advance(lab.services.settings.invoice_expiry_seconds + 1)
    swept = lab.services.invoices.sweep()
    assert swept.expired == 1
    assert lab.services.invoices.get(_hash(donation)).status is InvoiceStatus.EXPIRED  # type: ignore[union-attr]
    answer = lab.api.post("/dev/lightning/pay", json_body={"payment_hash": _hash(donation)})
    assert (answer.status, answer.error_code) == (409, "not_payable")


def test_paying_an_invoice_timmy_never_issued_is_a_404(lab: Lab) -> None:
    for body in ({"payment_hash": "0" * 64}, {"bolt11": "lnbcrt1garbage"}, {"bolt11": lab.node.wallet_invoice(5).bolt11}):
        answer = lab.api.post("/dev/lightning/pay", json_body=body)
        assert (answer.status, answer.error_code) == (404, "invoice_not_found"), body


def test_a_payment_above_the_amount_books_the_excess_as_refundable(lab: Lab) -> None:
    before = lab.pool_sats()
    refunds_before = lab.services.ledger.account(REFUNDS_PAYABLE).posted_balance_sats
    donation = lab.donate(100)
    lab.node.settle(_hash(donation), amount_sats=137, notify=False)
    assert lab.services.invoices.settle(_hash(donation)) is SettleOutcome.BOOKED
    assert lab.pool_sats() == before + 100
    assert lab.services.ledger.account(REFUNDS_PAYABLE).posted_balance_sats == refunds_before + 37
    excess = lab.services.ledger.require_transfer(f"invoice:{_hash(donation)}:excess")
    assert (excess.code, excess.amount_sats) == (TransferCode.OVERPAYMENT, 37)


def test_a_poison_message_ends_in_the_dlq_and_its_batch_is_processed(lab: Lab) -> None:
    before = lab.pool_sats()
    donations = [lab.donate(7), lab.donate(8)]
    for donation in donations:
        lab.node.settle(_hash(donation), notify=False)
    client = lab.sqs.client()
    bodies = [
        messages.encode(messages.INVOICE_NOTIFIED, payment_hash=_hash(donations[0]), owner=None),
        messages.encode(messages.INVOICE_NOTIFIED, payment_hash="not-a-hash", owner=None),
        messages.encode(messages.INVOICE_NOTIFIED, payment_hash=_hash(donations[1]), owner=None),
    ]
    client.send_message_batch(
        QueueUrl=lab.sqs.queue_urls["SettlementQueue"], Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    )
    max_receives = resources("AWS::SQS::Queue")["SettlementQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    dead: list[dict[str, object]] = []
    for _ in range(max_receives * 10):
        lab.settle_queue(rounds_max=1)
        dead = client.receive_message(QueueUrl=lab.sqs.queue_urls["SettlementDeadLetterQueue"], WaitTimeSeconds=0).get("Messages", [])
        if dead:
            break
    assert [m["Body"] for m in dead] == [bodies[1]]
    assert lab.pool_sats() == before + 15


def test_a_settlement_that_crashes_after_booking_is_healed_by_the_redelivery(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker dies between the booking transaction and the owner's next step (as a Lambda
    killed by its timeout): the redelivered message books nothing more and runs the next step."""
    before = lab.pool_sats()
    donation = lab.donate(12)
    lab.node.settle(_hash(donation), notify=False)
    steps: list[str] = []

    def crash_once(invoice: object) -> None:
        steps.append("paid")
        if len(steps) == 1:
            raise TimeoutError("Task timed out after 10.00 seconds")

    monkeypatch.setattr(lab.services.donations, "paid", crash_once)
    lab.services.settlement_queue.send({"type": messages.INVOICE_NOTIFIED, "payment_hash": _hash(donation), "owner": None})
    for _ in range(50):
        lab.settle_queue(rounds_max=1)
        if lab.sqs.approximate_counts("SettlementQueue") == (0, 0):
            break
    assert steps == ["paid", "paid"]
    assert lab.pool_sats() == before + 12


@pytest.mark.parametrize(
    "body", [{"amount_sats": 0}, {"amount_sats": -5}, {"amount_sats": 1.5}, {"amount_sats": "10"}, {}, {"amount_sats": 10, "x": 1}]
)
def test_a_bad_donation_is_refused_and_leaves_nothing(lab: Lab, body: dict[str, object]) -> None:
    answer = lab.api.post("/api/pool/donations", json_body=body)
    assert answer.status == 400 and answer.json["error"]["message"]
    assert lab.node.listing()["invoices"] == []


def test_a_donation_above_the_ceiling_is_refused(lab: Lab) -> None:
    answer = lab.api.post("/api/pool/donations", json_body={"amount_sats": lab.services.settings.donation_max_sats + 1})
    assert (answer.status, answer.error_code) == (400, "invalid_amount")
    assert lab.node.listing()["invoices"] == []


def test_a_retried_donation_with_an_idempotency_key_gets_the_same_invoice(lab: Lab) -> None:
    headers = {"Idempotency-Key": "donate-once"}
    first = lab.api.post("/api/pool/donations", json_body={"amount_sats": 9, "note": "thanks"}, headers=headers)
    again = lab.api.post("/api/pool/donations", json_body={"amount_sats": 9, "note": "thanks"}, headers=headers)
    assert first.status == again.status == 201 and first.json == again.json
    assert len(lab.node.listing()["invoices"]) == 1
