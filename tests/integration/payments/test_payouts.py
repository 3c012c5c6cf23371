"""Money out (issue 11): a payout is claimed in the table before it is paid, paid once, recorded
once. A timeout leaves it tracked, never paid blindly again; a failure gives the sats back."""

from __future__ import annotations

import threading

import pytest

from tests.integration.payments.conftest import Lab
from timmy.errors import Conflict, InsufficientFunds, InvalidInput
from timmy.ledger.model import LIGHTNING_CLEARING, OPERATOR_REVENUE, TransferCode, escrow_account
from timmy.payments.model import PayoutStatus
from timmy.ports.lightning import LightningUnavailable, Payment

OWED = escrow_account("payout-test")


@pytest.fixture
def owed(lab: Lab) -> str:
    """An escrow (no overdraft) holding 1,000 sats that are owed back to a user."""
    lab.services.ledger.create_transfer("fund-payout-test", LIGHTNING_CLEARING, OWED, 1_000, TransferCode.INVOICE_PAYMENT)
    return OWED


def _available(lab: Lab) -> int:
    return lab.services.ledger.account(OWED).computed_available_sats


def _node_payments(lab: Lab, payment_hash: str) -> list[dict[str, object]]:
    return [p for p in lab.node.listing()["payouts"] if p["payment_hash"] == payment_hash]


def test_a_payout_is_paid_once_and_its_fee_is_booked(lab: Lab, owed: str) -> None:
    invoice = lab.node.wallet_invoice(300)
    record = lab.services.payouts.pay("refund-1", "refund:job:1", owed, invoice.bolt11, 300)
    assert record.status is PayoutStatus.SUCCEEDED and record.fee_sats == 1
    again = lab.services.payouts.pay("refund-1", "refund:job:1", owed, invoice.bolt11, 300)
    assert again.status is PayoutStatus.SUCCEEDED
    assert len(_node_payments(lab, invoice.payment_hash)) == 1
    assert lab.services.ledger.account(owed).posted_balance_sats == 700
    fee = lab.services.ledger.require_transfer("payout:refund-1:fee")
    assert (fee.debit_account_id, fee.amount_sats, fee.code) == (OPERATOR_REVENUE, 1, TransferCode.LIGHTNING_FEE)


def test_a_payout_that_times_out_is_paid_at_most_once_across_retries_and_sweeps(lab: Lab, owed: str) -> None:
    invoice = lab.node.wallet_invoice(250, behaviour="timeout")
    first = lab.services.payouts.pay("refund-2", "refund:job:2", owed, invoice.bolt11, 250)
    assert first.status is PayoutStatus.PAYING
    assert _available(lab) == 750  # held while the outcome is unknown
    for _ in range(3):  # the client retries, the sweeper runs: nothing is paid again
        assert lab.services.payouts.pay("refund-2", "refund:job:2", owed, invoice.bolt11, 250).status is PayoutStatus.PAYING
        sweep = lab.services.payouts.sweep()
        assert (sweep.succeeded, sweep.failed, sweep.still_unknown) == (0, 0, 1)
    assert len(_node_payments(lab, invoice.payment_hash)) == 1
    with pytest.raises(Conflict):  # the same invoice under another payout id: refused, not paid
        lab.services.payouts.pay("refund-2b", "refund:job:2", owed, invoice.bolt11, 250)
    lab.node.resolve_payment(invoice.payment_hash, succeed=True)
    assert lab.services.payouts.sweep().succeeded == 1
    assert lab.services.payouts.sweep().succeeded == 0  # recorded once
    assert lab.services.payouts.get("refund-2").status is PayoutStatus.SUCCEEDED  # type: ignore[union-attr]
    assert lab.services.ledger.account(owed).posted_balance_sats == 750 and _available(lab) == 750


def test_a_payout_in_flight_that_then_fails_gives_the_sats_back(lab: Lab, owed: str) -> None:
    invoice = lab.node.wallet_invoice(100, behaviour="in_flight")
    assert lab.services.payouts.pay("refund-3", "refund:job:3", owed, invoice.bolt11, 100).status is PayoutStatus.PAYING
    lab.node.resolve_payment(invoice.payment_hash, succeed=False)
    assert lab.services.payouts.sweep().failed == 1
    assert _available(lab) == 1_000
    assert lab.services.payouts.get("refund-3").status is PayoutStatus.FAILED  # type: ignore[union-attr]


def test_a_failed_payout_returns_the_sats_and_the_invoice_may_be_tried_again(lab: Lab, owed: str) -> None:
    invoice = lab.node.wallet_invoice(400, behaviour="fail")
    failed = lab.services.payouts.pay("refund-4", "refund:job:4", owed, invoice.bolt11, 400)
    assert failed.status is PayoutStatus.FAILED and failed.failure_reason
    assert _available(lab) == 1_000
    retried = lab.services.payouts.pay("refund-4b", "refund:job:4", owed, invoice.bolt11, 400)
    assert retried.status is PayoutStatus.FAILED  # this wallet always fails; the claim was allowed
    assert _available(lab) == 1_000


def test_concurrent_calls_for_one_payout_pay_once(lab: Lab, owed: str) -> None:
    invoice = lab.node.wallet_invoice(50)
    barrier = threading.Barrier(8)
    results: list[PayoutStatus] = []
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(lab.services.payouts.pay("refund-5", "refund:job:5", owed, invoice.bolt11, 50).status)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(_node_payments(lab, invoice.payment_hash)) == 1
    assert lab.services.ledger.account(owed).posted_balance_sats == 950
    lab.services.payouts.sweep()
    assert lab.services.payouts.get("refund-5").status is PayoutStatus.SUCCEEDED  # type: ignore[union-attr]


def test_a_payment_the_backend_never_saw_is_failed_after_the_grace_period(lab: Lab, owed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    invoice = lab.node.wallet_invoice(60)

    def unreachable(bolt11: str, amount_sats: int, fee_limit_sats: int) -> Payment:
        raise LightningUnavailable("connection reset before the request was sent")

    monkeypatch.setattr(lab.node, "pay", unreachable)
    assert lab.services.payouts.pay("refund-6", "refund:job:6", owed, invoice.bolt11, 60).status is PayoutStatus.PAYING
    assert lab.services.payouts.sweep().still_unknown == 1  # within the grace period: still tracked
    lab.clock.advance(lab.services.settings.payout_unknown_grace_seconds + 1)
    assert lab.services.payouts.sweep().failed == 1
    assert _available(lab) == 1_000
    assert _node_payments(lab, invoice.payment_hash) == []


def test_invoices_that_do_not_fit_are_refused_before_anything_is_held(lab: Lab, owed: str) -> None:
    with pytest.raises(InvalidInput, match="exactly 10 sats"):
        lab.services.payouts.pay("refund-7", "refund:job:7", owed, lab.node.wallet_invoice(11).bolt11, 10)
    with pytest.raises(InvalidInput, match="expired"):
        lab.services.payouts.pay("refund-7", "refund:job:7", owed, lab.node.wallet_invoice(10, expiry_seconds=30).bolt11, 10)
    with pytest.raises(InvalidInput):
        lab.services.payouts.pay("refund-7", "refund:job:7", owed, "lnbc1garbage", 10)
    with pytest.raises(InsufficientFunds):
        lab.services.payouts.pay("refund-7", "refund:job:7", owed, lab.node.wallet_invoice(1_001).bolt11, 1_001)
    assert _available(lab) == 1_000 and lab.services.payouts.get("refund-7") is None
