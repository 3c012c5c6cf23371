"""Payouts out, exactly once: a durable claim, then the payment, then its record.

1. Claim (one transaction): a hold `payout:<id>` of the amount on the account it is owed from
   (no expiry: only this module resolves it), the payout row (`paying`), and a row per payment
   hash, so one invoice is never claimed by two payouts.
2. Pay, with the fee limit.
3. Record (one transaction): succeeded → the hold posts to Lightning clearing and the routing fee
   is booked from operator revenue; failed → the hold is voided (the sats are owed again).

An outcome that is not known (a timeout, a server error, in flight) leaves the payout `paying`:
it is never paid again. The sweeper asks the backend (`Lightning.payment`) until it knows; a
payment the backend never saw is failed after `payout_unknown_grace_seconds`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from timmy import invoice_codec
from timmy.clock import Clock
from timmy.config import Settings
from timmy.errors import Conflict, InsufficientFunds, InvalidInput
from timmy.ledger.ledger import Batch, ConditionFailed, Ledger, Limit, decimal_seconds
from timmy.ledger.model import LIGHTNING_CLEARING, OPERATOR_REVENUE, TransferCode
from timmy.payments.model import (
    INDEX_ATTRIBUTES,
    PAYOUT_TRANSITIONS,
    PAYOUTS_OPEN_PARTITION,
    PayoutRecord,
    PayoutStatus,
    payout_hash_key,
    payout_key,
    sources_of,
)
from timmy.ports.lightning import DecodedInvoice, Lightning, LightningError, LightningUnavailable, Payment, PaymentState

log = logging.getLogger(__name__)

INVOICE_EXPIRY_MARGIN_SECONDS = 60  # an invoice must stay payable this long after it is checked
SWEEP_PAGE_SIZE = 100


@dataclass
class PayoutSweep:
    """What one sweep of the payouts still `paying` did: their outcome as the backend now reports
    it (succeeded, failed, or still unknown), and the ones left for the next run (an error)."""

    succeeded: int = 0
    failed: int = 0
    still_unknown: int = 0
    errors: list[str] = field(default_factory=list)


class Payouts:
    def __init__(self, ledger: Ledger, lightning: Lightning, clock: Clock, settings: Settings):
        self.ledger = ledger
        self.lightning = lightning
        self.clock = clock
        self.settings = settings

    def check_invoice(self, bolt11: object, amount_sats: int) -> DecodedInvoice:
        """`bolt11` decoded, for exactly `amount_sats` and payable for a while yet, or InvalidInput."""
        decoded = invoice_codec.decode(bolt11)
        if decoded.amount_sats != amount_sats:
            asked = "no amount" if decoded.amount_sats is None else f"{decoded.amount_sats} sats"
            raise InvalidInput(f"the invoice asks for {asked}; it must ask for exactly {amount_sats} sats", code="invoice_amount_mismatch")
        if decoded.expires_at < self.clock.now() + INVOICE_EXPIRY_MARGIN_SECONDS:
            raise InvalidInput("the invoice has expired or expires within a minute; send a fresh one", code="invoice_expired")
        return decoded

    def get(self, payout_id: str) -> PayoutRecord | None:
        item = self.ledger.item(payout_key(payout_id))
        return PayoutRecord.from_item(item) if item else None

    def pay(
        self,
        payout_id: str,
        owner: str,
        debit_account_id: str,
        bolt11: str,
        amount_sats: int,
        checked: DecodedInvoice | None = None,
        *,
        with_claim: Callable[[Batch], None] | None = None,
    ) -> PayoutRecord:
        """Pay `bolt11` (exactly `amount_sats`) from what `debit_account_id` owes, once per
        `payout_id`: a second call returns the first payout as it stands, and pays nothing.
        `checked`: what `check_invoice(bolt11, amount_sats)` answered, when the caller checked the
        invoice already (to name the payout by its hash): it is not decoded a second time.
        `with_claim`: adds the owner's own changes to the claim's transaction (e.g. its row naming
        the payout), so they are written exactly when the payout is claimed."""
        existing = self.get(payout_id)
        if existing is not None:
            return existing
        decoded = checked or self.check_invoice(bolt11, amount_sats)
        record = PayoutRecord(
            payout_id=payout_id,
            owner=owner,
            debit_account_id=debit_account_id,
            bolt11=bolt11.strip(),
            payment_hash=decoded.payment_hash,
            amount_sats=amount_sats,
            fee_limit_sats=self.settings.payout_fee_limit_sats,
            created_at=self.clock.now(),
        )
        batch = self.ledger.batch()
        batch.reserve(
            record.hold_id, debit_account_id, LIGHTNING_CLEARING, amount_sats, TransferCode.PAYOUT, None, payment_hash=decoded.payment_hash
        )
        batch.put_once(f"payout:{payout_id}", record.item())
        hash_pk, hash_sk = payout_hash_key(decoded.payment_hash)
        hash_row = {"pk": hash_pk, "sk": hash_sk, "type": "payout_hash", "payout_id": payout_id, "state": PayoutStatus.PAYING.value}
        batch.put_once(f"payout_hash:{decoded.payment_hash}", hash_row, replaces_state=PayoutStatus.FAILED.value)
        if with_claim is not None:
            with_claim(batch)
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if failed.lost(Limit.ROW_EXISTS, f"payout:{payout_id}") or failed.lost(Limit.TRANSFER_EXISTS, record.hold_id):
                twin = self.get(payout_id)  # a concurrent call claimed it first
                if twin is not None:
                    return twin
            if failed.ids(Limit.ROW_EXISTS):
                raise Conflict("this invoice is already being paid or was paid; send a new invoice", code="invoice_already_used") from None
            if failed.ids(Limit.OVERDRAFT):
                raise InsufficientFunds(f"{debit_account_id} does not hold {amount_sats} sats to pay out") from None
            raise
        return self._send(record)

    def _send(self, record: PayoutRecord) -> PayoutRecord:
        try:
            payment = self.lightning.pay(record.bolt11, record.amount_sats, record.fee_limit_sats)
        except LightningUnavailable as error:
            log.warning("payout outcome unknown; tracked, never paid again", extra={"payout_id": record.payout_id, "error": str(error)})
            return record
        except LightningError as error:  # a known refusal: nothing was paid
            payment = Payment(record.payment_hash, PaymentState.FAILED, record.amount_sats, failure_reason=str(error)[:200])
        return self._record(record, payment)

    def _record(self, record: PayoutRecord, payment: Payment) -> PayoutRecord:
        if payment.state is PaymentState.IN_FLIGHT:
            return record
        hold = self.ledger.require_transfer(record.hold_id)
        batch = self.ledger.batch()
        key = payout_key(record.payout_id)
        now = decimal_seconds(batch.now)
        if payment.state is PaymentState.SUCCEEDED:
            batch.post(hold, record.amount_sats)
            if payment.fee_sats:
                batch.transfer(
                    f"{record.hold_id}:fee",
                    OPERATOR_REVENUE,
                    LIGHTNING_CLEARING,
                    payment.fee_sats,
                    TransferCode.LIGHTNING_FEE,
                    payout_id=record.payout_id,
                )
            done = replace(record, status=PayoutStatus.SUCCEEDED, fee_sats=payment.fee_sats, resolved_at=batch.now)
            changes = {"fee_sats": payment.fee_sats, "resolved_at": now}
        else:
            batch.void(hold)
            reason = (payment.failure_reason or "the payment failed")[:200]
            done = replace(record, status=PayoutStatus.FAILED, failure_reason=reason, resolved_at=batch.now)
            changes = {"failure_reason": reason, "resolved_at": now}
            # The invoice may be tried again by a new payout: its hash row is released.
            batch.transition(
                f"payout_hash:{record.payment_hash}",
                payout_hash_key(record.payment_hash),
                [PayoutStatus.PAYING.value],
                PayoutStatus.FAILED.value,
            )
        batch.transition(
            f"payout:{record.payout_id}",
            key,
            sources_of(PAYOUT_TRANSITIONS, done.status),
            done.status.value,
            set_=changes,
            remove=INDEX_ATTRIBUTES,
        )
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            current = self.get(record.payout_id)  # recorded meanwhile (a sweep, a twin)
            if current is None or current.status is PayoutStatus.PAYING:
                raise
            return current
        return done

    def resolve(self, record: PayoutRecord) -> PayoutRecord:
        """A payout whose outcome was not known: the backend's word now, recorded; never a new payment."""
        if record.status is not PayoutStatus.PAYING:
            return record
        payment = self.lightning.payment(record.payment_hash)
        if payment is None:
            if self.clock.now() - record.created_at < self.settings.payout_unknown_grace_seconds:
                return record
            payment = Payment(
                record.payment_hash, PaymentState.FAILED, record.amount_sats, failure_reason="the backend never saw the payment"
            )
        return self._record(record, payment)

    def sweep(self, pages_max: int = 10) -> PayoutSweep:
        """Resolve every payout still `paying`; one that cannot be resolved now is left for the next run."""
        report = PayoutSweep()
        for item in self.ledger.each_listed(PAYOUTS_OPEN_PARTITION, SWEEP_PAGE_SIZE, pages_max):
            payout_id = item["payout_id"]
            try:
                record = self.get(payout_id)  # the index may lag: read the row itself
                if record is None or record.status is not PayoutStatus.PAYING:
                    continue
                resolved = self.resolve(record)
            except (LightningUnavailable, ConditionFailed) as error:
                log.warning("payout left for the next sweep", extra={"payout_id": payout_id, "error": str(error)})
                report.errors.append(payout_id)
                continue
            if resolved.status is PayoutStatus.SUCCEEDED:
                report.succeeded += 1
            elif resolved.status is PayoutStatus.FAILED:
                report.failed += 1
            else:
                report.still_unknown += 1
        return report
