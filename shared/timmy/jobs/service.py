"""The job use case: eval → decide → pay or go free → work → reconcile → refund.

- **free**: pool and budget are reserved at decision time, in the transaction that writes the job
  (`add_free_reservation`; refused, `decide_and_reserve` decides on a read), the work is queued.
- **partial**: an invoice for the decision's charge; nothing is debited. Once paid, the grant is
  reserved (`reserve_partial_grant`); when the pool can no longer cover it, a second invoice asks
  for the shortfall (`awaiting_topup`).
- **gate**: an invoice for the whole estimate.

Paid sats sit in the job's escrow. The worker runs the executor, prices the actual usage (never
above the quote) and settles: the grant for what the pool absorbs (`record_grant`, the actual
amount only), then one transaction that charges the rest from escrow, credits the pool its share,
books the caller's paid history and completes the job. What stays in escrow is refundable; work
that failed, timed out or came back empty is never charged and every reservation is released.
Whether the work was free is read from the charge (0 sats), never from a flag.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from timmy.clock import iso
from timmy.errors import AlreadyApplied, Conflict, InvalidInput, NotFound, RateLimited, WorkInProgress
from timmy.free_tier.decision import Decision
from timmy.free_tier.service import Reservation
from timmy.identity.caller import Caller
from timmy.jobs.model import FINAL, JOB_TRANSITIONS, JOBS_RUNNING_PARTITION, WORK_LEASE, WORK_LEASED_IN, Job, JobStatus, job_key
from timmy.ledger.ledger import Batch, ConditionFailed, Limit, decimal_seconds
from timmy.ledger.model import OPERATOR_REVENUE, TransferCode, escrow_account
from timmy.messages import JOB_EXECUTE
from timmy.metering import Estimate
from timmy.payments.charges import book_paid_work
from timmy.payments.invoices import new_owner_id
from timmy.payments.model import INDEX_ATTRIBUTES, InvoiceRecord, PayoutRecord, PayoutStatus, sources_of
from timmy.ports.evaluator import Evaluation
from timmy.ports.executor import ExecutorError
from timmy.ports.lnurl import parse_lightning_address
from timmy.ports.queue import Queue
from timmy.work import PaidWork

log = logging.getLogger(__name__)

JOB_MEMO = "Timmy: job {job_id}"
TOPUP_MEMO = "Timmy: the rest of job {job_id}"
EVAL_MEMO = "Timmy: the eval fee of job {job_id}"
UNPAID = (JobStatus.AWAITING_EVAL_PAYMENT, JobStatus.AWAITING_PAYMENT, JobStatus.AWAITING_TOPUP)
# A settlement that crashed between starting a job and sending its work message is redelivered after
# the settlement queue's VisibilityTimeout (60 s): its next step re-sends the message. A twin of the
# notification (the sweeper's booking racing the webhook's, a backend's retry) comes sooner, while the
# first message is alive: re-sending then would run the work, and pay the provider, twice.
WORK_RESEND_AFTER_SECONDS = 30


@dataclass(frozen=True)
class JobSweep:
    """What one sweep of stuck jobs did: `failed` (refundable now), `leased` (a worker holds, or
    took meanwhile, the work: left to it, or to a later run once its lease lapsed)."""

    failed: int = 0
    leased: int = 0


@dataclass(eq=False)
class Jobs(PaidWork):
    kind: ClassVar[str] = "job"

    work_queue: Queue

    # --- reads ---------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        item = self.ledger.item(job_key(job_id))
        return Job.from_item(item) if item else None

    def require(self, job_id: str) -> Job:
        job = self.get(job_id) if isinstance(job_id, str) and re.fullmatch(r"[0-9a-f]{32}", job_id) else None
        if job is None:
            raise NotFound("no such job", code="job_not_found")
        return job

    def refundable_sats(self, job: Job) -> int:
        """What the caller may claim back: the escrow's available balance, once the job is final."""
        if job.status not in FINAL:
            return 0
        return self.ledger.account(escrow_account(job.job_id)).computed_available_sats

    # --- creating ------------------------------------------------------------------------

    def create(
        self,
        caller: Caller | None,
        request: object,
        model: str | None,
        max_output_tokens: object,
        refund_address: str | None,
        base_url: str,
        source: str = "",
    ) -> tuple[Job, InvoiceRecord | None]:
        """Evaluate, decide, and either queue the work (free) or issue the invoice (partial, gate).
        `source` (the client's address) counts an anonymous caller's unpaid jobs."""
        if refund_address is not None:
            parse_lightning_address(refund_address, allow_local=self.settings.lnurl_allow_local)
        evaluation = self.work.evaluate(request, model, max_output_tokens)
        estimate = evaluation.estimate
        job_id = new_owner_id()
        if caller is None and not source:
            raise InvalidInput("an anonymous job needs the caller's address", code="invalid_input")
        unread = None
        if caller is not None and caller.pubkey:
            # Free on the happy path is ONE transaction: the reservation, unread (its conditions are
            # the decision), and the executing job that keeps it. Refused by the pool or the
            # budget, nothing was written: decide on what is read, as after any lost race.
            batch = self.ledger.batch()
            if (unread := self.free_tier.add_free_reservation(batch, caller, estimate.sats, job_id)) is not None:
                job = self._executing(self._job(job_id, caller, unread[0], evaluation, refund_address, base_url, source), unread[1])
                batch.put_once(f"job:{job_id}", job.item())
                try:
                    self.ledger.commit(batch)
                except ConditionFailed as failed:
                    if not self.free_tier.refused_reservation(failed, unread[1]):
                        raise
                else:
                    self.work_queue.send({"type": JOB_EXECUTE, "job_id": job_id})
                    return job, None
            decided = self.free_tier.decide_and_reserve(caller, estimate.sats, job_id, unread=unread is None)
        else:
            decided = self.free_tier.decide(None, estimate.sats), None
        decision, reservation = decided
        base = self._job(job_id, caller, decision, evaluation, refund_address, base_url, source)
        batch = self.ledger.batch()
        if reservation is not None and reservation.amount_sats >= estimate.sats:
            job = self._executing(base, reservation)
            batch.put_once(f"job:{job_id}", job.item())
            self.ledger.commit(batch)
            self.work_queue.send({"type": JOB_EXECUTE, "job_id": job_id})
            return job, None
        if reservation is not None:  # a twin's smaller hold (cannot happen for a fresh id): give it back
            self.free_tier.release_reservation(reservation.pubkey, job_id)
        serve = "partial" if decision.serve == "partial" else "gate"
        amount = decision.charge_sats if serve == "partial" else estimate.sats
        job = replace(base, serve=serve, absorb_sats=decision.absorb_sats if serve == "partial" else 0, invoice_sats=amount)
        if serve == "gate" and self.settings.eval_fee_sats:  # the eval fee first; the work's invoice once it is paid
            invoice = self.invoices.issue(self.kind, job_id, self.settings.eval_fee_sats, EVAL_MEMO.format(job_id=job_id), base_url)
            job = replace(job, status=JobStatus.AWAITING_EVAL_PAYMENT, eval_hash=invoice.payment_hash)
        else:
            invoice = self.invoices.issue(self.kind, job_id, amount, JOB_MEMO.format(job_id=job_id), base_url)
            job = replace(job, invoice_hash=invoice.payment_hash)
        self.invoices.add(batch, invoice)
        batch.put_once(f"job:{job_id}", job.item())
        _count_unpaid(batch, job, +1, self.settings.max_unpaid_jobs)
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if failed.ids(Limit.BOUND):
                raise RateLimited(
                    f"you have {self.settings.max_unpaid_jobs} unpaid jobs open; pay or let them expire first", code="too_many_unpaid_jobs"
                ) from None
            raise
        return job, invoice

    def _job(
        self,
        job_id: str,
        caller: Caller | None,
        decision: Decision,
        evaluation: Evaluation,
        refund_address: str | None,
        base_url: str,
        source: str,
    ) -> Job:
        """A new job as `decision` leaves it, awaiting payment until its flow says otherwise."""
        estimate = evaluation.estimate
        return Job(
            job_id=job_id,
            status=JobStatus.AWAITING_PAYMENT,
            pubkey=caller.pubkey if caller else None,
            tier=decision.tier,
            request=evaluation.request,
            model=estimate.model,
            max_output_tokens=estimate.output_tokens,
            estimate=dict(estimate.as_dict()),
            serve=decision.serve,
            absorb_sats=decision.absorb_sats,
            invoice_sats=0,
            created_at=self.clock.now(),
            refund_address=refund_address.lower() if refund_address else None,
            base_url=base_url,
            payer=caller.pubkey if caller else f"ip:{source}",
        )

    @staticmethod
    def _executing(job: Job, reservation: Reservation) -> Job:
        """A free job: executing at once, keeping the reservation it settles unread."""
        return replace(
            job,
            status=JobStatus.EXECUTING,
            reserved_sats=reservation.amount_sats,
            reservation=reservation.as_item(),
            serve="free",
            executing_at=job.created_at,
        )

    # --- the invoice owner (settlement's dispatch) -----------------------------------------

    def account_id(self, invoice: InvoiceRecord) -> str:
        return escrow_account(invoice.owner_id)  # an excess too: refundable with the rest of the escrow

    # No `book`: the job moves on in `paid`, which reserves the partial grant first.

    def paid(self, invoice: InvoiceRecord) -> None:
        """The next step of a paid job; idempotent (a redelivered notification runs it again)."""
        job = self.get(invoice.owner_id)
        if job is not None and job.status is JobStatus.AWAITING_EVAL_PAYMENT:
            if invoice.payment_hash == job.eval_hash:
                self._eval_paid(job)
            return
        if job is None or job.status not in UNPAID:
            if job is not None and job.status is JobStatus.EXECUTING and self._work_message_may_be_lost(job):
                self.work_queue.send({"type": JOB_EXECUTE, "job_id": job.job_id})  # the crash before the send, healed
            return
        if invoice.payment_hash != (job.topup_hash if job.status is JobStatus.AWAITING_TOPUP else job.invoice_hash):
            return  # another of the job's invoices (the eval fee's, redelivered): it does not start the work
        held, taken = 0, None
        if job.serve == "partial" and job.status is JobStatus.AWAITING_PAYMENT:
            caller = Caller(job.pubkey or "", job.tier)  # type: ignore[arg-type]
            reservation = self.free_tier.reserve_partial_grant(caller, job.job_id, job.absorb_sats)
            held, taken = (reservation.amount_sats, reservation.as_item()) if reservation else (0, None)
            if held < job.absorb_sats:
                self._ask_for_shortfall(job, held, taken)
                return
        elif job.status is JobStatus.AWAITING_TOPUP:
            held, taken = job.reserved_sats, job.reservation
        self._start(job, held, taken)

    def _work_message_may_be_lost(self, job: Job) -> bool:
        """Whether a repeated notification finds the job started long enough ago that its work
        message may never have been sent (see WORK_RESEND_AFTER_SECONDS)."""
        return job.executing_at is None or self.clock.now() - job.executing_at >= WORK_RESEND_AFTER_SECONDS

    def _eval_paid(self, job: Job) -> None:
        """The eval fee is charged from the escrow and the work's invoice issued, in one transaction."""
        invoice = self.invoices.issue(self.kind, job.job_id, job.invoice_sats, JOB_MEMO.format(job_id=job.job_id), job.base_url)
        batch = self.ledger.batch()
        fee_id = f"eval-fee:{job.job_id}"
        batch.transfer(
            fee_id, escrow_account(job.job_id), OPERATOR_REVENUE, self.settings.eval_fee_sats, TransferCode.CHARGE, job_id=job.job_id
        )
        book_paid_work(batch, self.free_tier, fee_id, self.settings.eval_fee_sats, job.pubkey)
        self.invoices.add(batch, invoice)
        self._move(batch, job, JobStatus.AWAITING_PAYMENT, invoice_hash=invoice.payment_hash)
        with contextlib.suppress(ConditionFailed):  # a twin moved it first; this invoice was never shown
            self.ledger.commit(batch)

    def _ask_for_shortfall(self, job: Job, held: int, reservation: dict[str, Any] | None) -> None:
        shortfall = job.absorb_sats - held
        invoice = self.invoices.issue(self.kind, job.job_id, shortfall, TOPUP_MEMO.format(job_id=job.job_id), job.base_url)
        batch = self.ledger.batch()
        self.invoices.add(batch, invoice)
        self._move(batch, job, JobStatus.AWAITING_TOPUP, reserved_sats=held, reservation=reservation, topup_hash=invoice.payment_hash)
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            return  # a twin asked first; this invoice was never shown to anyone

    def _start(self, job: Job, held: int, reservation: dict[str, Any] | None) -> None:
        batch = self.ledger.batch()
        self._move(batch, job, JobStatus.EXECUTING, reserved_sats=held, reservation=reservation)
        _count_unpaid(batch, job, -1)
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            return  # a twin started it
        self.work_queue.send({"type": JOB_EXECUTE, "job_id": job.job_id})

    def expired(self, invoice: InvoiceRecord) -> None:
        """The job's invoice expired unpaid: the job expires; a partial grant held for it is released
        and whatever was paid stays refundable in the escrow."""
        job = self.get(invoice.owner_id)
        if job is None or job.status not in UNPAID or invoice.payment_hash != _awaited_hash(job):
            return
        batch = self.ledger.batch()
        self._move(batch, job, JobStatus.EXPIRED)
        _count_unpaid(batch, job, -1)
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            return
        if job.reserved_sats and job.pubkey:
            self._release(job)

    # --- the worker ------------------------------------------------------------------------

    def execute(self, job_id: str) -> Job | None:
        """Run a job's work and settle it. The work runs under the job's work lease (`_claim`), so
        the executor is called at most once per lease however often the queue delivers the
        message; a delivery that finds the lease held raises `WorkInProgress`. A job that is not
        executing (done, or a late duplicate message) is left as it is. A retryable provider error
        raises: the queue redelivers (after its VisibilityTimeout, past the lease)."""
        job = self.get(job_id)
        if job is None or job.status is not JobStatus.EXECUTING:
            return job
        job = self._claim(job)
        if job.status is not JobStatus.EXECUTING:
            return job
        estimate = Estimate.from_dict(job.estimate)
        try:
            result = self.work.run(job.request, estimate)
        except ExecutorError as error:
            if getattr(error, "retryable", False):
                raise
            return self.fail(job, f"{type(error).__name__}: {str(error)[:200]}")
        actual = self.work.actual_charge_sats(result, estimate)
        return self._settle(job, actual, result.text)

    def _claim(self, job: Job) -> Job:
        """Take the job's work lease for WORK_LEASE_SECONDS, one conditional write: the job is
        still executing and no live lease is held on it. Answers the job as claimed, or the job as
        it now is when it became final meanwhile; `WorkInProgress` while another delivery holds it."""
        batch = self.ledger.batch()
        until = batch.now + self.settings.work_lease_seconds
        state = WORK_LEASED_IN.value
        batch.transition(
            f"job:{job.job_id}", job_key(job.job_id), [state], state, add={"work_attempts": 1}, lease=WORK_LEASE, lease_until=until
        )
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            current = self.get(job.job_id) or job
            if current.status is WORK_LEASED_IN:
                raise WorkInProgress(f"job {job.job_id}: its work is leased until {iso(current.work_lease_until or 0)}") from None
            return current
        return replace(job, work_lease_until=until, work_attempts=job.work_attempts + 1)

    def _settle(self, job: Job, actual_sats: int, text: str) -> Job:
        granted = min(actual_sats, job.reserved_sats) if job.reserved_sats and job.pubkey else 0
        if granted and job.reservation:
            # One transaction: the grant (the hold the job keeps, settled unread), the charge, the completion.
            batch = self.ledger.batch()
            self.free_tier.add_grant(batch, Reservation.from_item(job.reservation), granted, paid_for=job.job_id)
            with contextlib.suppress(ConditionFailed):  # a twin settled it, or the hold moved: step by step, reading
                return self._complete(batch, job, actual_sats, granted, text)
        absorbed = self._grant(job, granted) if job.reserved_sats and job.pubkey else 0
        try:
            return self._complete(self.ledger.batch(), job, actual_sats, absorbed, text)
        except ConditionFailed as failed:
            current = self.get(job.job_id)
            if current is not None and current.status is not JobStatus.EXECUTING:
                return current  # a twin settled it
            if failed.ids(Limit.OVERDRAFT):  # cannot happen: the charge is bounded by what was paid
                log.error("a job's charge exceeded its escrow", extra={"job_id": job.job_id, "charge": actual_sats - absorbed})
            raise

    def _complete(self, batch: Batch, job: Job, actual_sats: int, absorbed: int, text: str) -> Job:
        """Charge what the pool did not absorb from the escrow (with the pool credit and the paid
        history) and complete the job, in `batch`; committed here (ConditionFailed when refused)."""
        charge = max(actual_sats - absorbed, 0)
        if charge:
            charge_id = f"charge:{job.job_id}"
            batch.transfer(charge_id, escrow_account(job.job_id), OPERATOR_REVENUE, charge, TransferCode.CHARGE, job_id=job.job_id)
            book_paid_work(batch, self.free_tier, charge_id, charge, job.pubkey)
        self._move(batch, job, JobStatus.COMPLETE, result=text, absorbed_sats=absorbed, charged_sats=charge)
        self.ledger.commit(batch)
        done = replace(job, status=JobStatus.COMPLETE, result=text, absorbed_sats=absorbed, charged_sats=charge)
        self._auto_refund(done)
        return done

    def _grant(self, job: Job, absorbed: int) -> int:
        assert job.pubkey is not None
        try:
            reservation = Reservation.from_item(job.reservation) if job.reservation else None  # settled unread: one round trip
            return self.free_tier.record_grant(
                job.pubkey, job.job_id, absorbed, job.reserved_sats, paid_for=job.job_id, reservation=reservation
            ).absorbed_sats
        except AlreadyApplied:  # a redelivered message priced the work again: the first grant stands
            hold = self.ledger.require_transfer(_subsidy_id(job))
            return hold.effective_posted_sats
        except Conflict:  # the sweeper voided the hold (it outlived its TTL): nothing was absorbed
            return 0

    def fail(self, job: Job, reason: str) -> Job:
        """Work that did not produce a chargeable answer: nothing charged, every hold released,
        everything paid refundable. Answers the job as it now is (a twin may have settled it)."""
        return self._fail(job, reason) or self.get(job.job_id) or job

    def _fail(self, job: Job, reason: str, *, unless_leased: bool = False) -> Job | None:
        """`fail`, or None when the move was refused: the job is no longer executing, or (with
        `unless_leased`, the sweeper's) a delivery holds its work lease, in the same conditional
        write, so a worker that claimed the job after it was read keeps it."""
        batch = self.ledger.batch()
        self._move(batch, job, JobStatus.FAILED, lease=WORK_LEASE if unless_leased else None, failure=reason)
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            return None
        if job.reserved_sats and job.pubkey:
            self._release(job)
        done = replace(job, status=JobStatus.FAILED, failure=reason)
        self._auto_refund(done)
        return done

    def _release(self, job: Job) -> None:
        assert job.pubkey is not None
        self.work.release(job.pubkey, job.job_id)

    def _move(self, batch: Batch, job: Job, to: JobStatus, *, lease: str | None = None, **changes: Any) -> None:
        """Move `job` to `to` in `batch` (setting `changes`); with `lease`, refused while it is held."""
        set_ = {name: value for name, value in changes.items() if value is not None}
        remove: tuple[str, ...] = () if to is JobStatus.EXECUTING else INDEX_ATTRIBUTES
        if to is JobStatus.EXECUTING:  # listed for the sweeper from the moment the work may start
            set_ |= {
                "gsi1pk": JOBS_RUNNING_PARTITION,
                "gsi1sk": f"{iso(batch.now)}#{job.job_id}",
                "executing_at": decimal_seconds(batch.now),
            }
        batch.transition(
            f"job:{job.job_id}", job_key(job.job_id), sources_of(JOB_TRANSITIONS, to), to.value, set_=set_, remove=remove, lease=lease
        )

    def sweep(self, limit: int = 100) -> JobSweep:
        """Fail the jobs whose work never finished (its messages dead-lettered, the worker killed
        every time): nothing charged, holds released, what was paid refundable. A job whose work
        lease is live is left alone: a worker is running it (the lease outlives any worker), and
        may yet pay the provider and charge for it; it is failed by a later run once the lease
        lapsed. The fail is conditional on the lease too, so a worker claiming the job between
        this read and this write wins, and the sweep leaves it."""
        now = self.clock.now()
        items, _ = self.ledger.listed(JOBS_RUNNING_PARTITION, limit, until=now - self.settings.job_stuck_seconds)
        failed = leased = 0
        for item in items:
            job = self.get(item["job_id"])  # the index may lag: read the row itself
            if job is None or job.status is not JobStatus.EXECUTING:
                continue
            if job.work_lease_until is not None and job.work_lease_until > now:
                leased += 1
                continue
            if self._fail(job, "the work did not finish in time", unless_leased=True) is not None:
                failed += 1
            else:
                leased += 1  # a worker claimed it meanwhile (or finished it)
        return JobSweep(failed=failed, leased=leased)

    # --- refunds ---------------------------------------------------------------------------

    def refund(self, job_id: str, bolt11: object) -> PayoutRecord:
        """Pay the job's refundable sats to `bolt11` (for exactly that amount), once."""
        job = self.require(job_id)
        if job.status not in FINAL:
            raise Conflict(f"the job is {job.status.value}; a refund can be claimed once it is final", code="job_not_final")
        payouts = self._payouts()
        if job.refund_payout_id:
            previous = payouts.get(job.refund_payout_id)
            if previous is not None and previous.status is not PayoutStatus.FAILED:
                return previous  # paid or being paid: the same answer, never a second payment
        refundable = self.refundable_sats(job)
        if refundable <= 0:
            raise Conflict("nothing is refundable for this job", code="nothing_refundable")
        decoded = payouts.check_invoice(bolt11, refundable)
        payout_id = f"refund-{job.job_id}-{decoded.payment_hash[:16]}"
        batch = self.ledger.batch()  # the job names its refund; a concurrent claim of another invoice is refused
        batch.transition(
            f"job:{job.job_id}", job_key(job.job_id), [job.status.value], job.status.value, set_={"refund_payout_id": payout_id}
        )
        self.ledger.commit(batch)
        payout = payouts.pay(payout_id, f"refund:job:{job.job_id}", escrow_account(job.job_id), str(bolt11), refundable, decoded)
        return payout

    @staticmethod
    def refund_status(payout: PayoutRecord | None, refundable_sats: int) -> str:
        """The refund's payout status (pending, paid, failed), else claimable or none."""
        if payout is not None:
            return payout.answer_status
        return "claimable" if refundable_sats > 0 else "none"

    def _auto_refund(self, job: Job) -> None:
        """With a refund_address, pay what is refundable to it now; any failure leaves it claimable."""
        if not job.refund_address:
            return
        try:
            refundable = self.refundable_sats(job)
            if refundable <= 0:
                return
            bolt11 = self.refund_invoice(job.refund_address, refundable, f"Timmy refund for job {job.job_id}")
            if bolt11 is not None:
                self.refund(job.job_id, bolt11)
        except Exception as error:  # unreachable address, refused invoice, a busy backend: claimable, never lost
            log.warning("automatic refund not paid; it stays claimable", extra={"job_id": job.job_id, "error": str(error)[:200]})

    def awaited_invoice(self, job: Job) -> InvoiceRecord | None:
        """The invoice an unpaid job waits for: the eval fee's, the work's, or the top-up's (each
        issued only once the one before is paid, so the caller reads it here). None once paid."""
        payment_hash = _awaited_hash(job)
        return self.invoices.get(payment_hash) if payment_hash else None

    # --- receipts --------------------------------------------------------------------------

    def view(self, job: Job, *, new: bool = False) -> dict[str, Any]:
        """`GET /api/jobs/{job_id}`. `new`: the job `create` just answered (the POST's answer), of which
        nothing can have been paid, eval-fee charged or refunded yet: the receipt needs no reads."""
        # The refund's payout is read before the escrow: a payout's success and the escrow's debit are
        # one transaction, so a payout read as paid is never shown beside the sats it paid out.
        payout = self._payouts().get(job.refund_payout_id) if job.refund_payout_id else None
        refundable = self.refundable_sats(job)
        transfers = [] if new else [f"invoice:{h}" for h in (job.eval_hash, job.invoice_hash, job.topup_hash) if h]
        paid, ids = 0, []
        for transfer_id in transfers:  # what was paid in: each invoice's booking and any excess
            for booked in (self.ledger.transfer(transfer_id), self.ledger.transfer(f"{transfer_id}:excess")):
                if booked is not None:
                    paid += booked.effective_posted_sats
                    ids.append(booked.transfer_id)
        refunded, refund_ids = 0, []
        if payout is not None and payout.status is PayoutStatus.SUCCEEDED:
            refunded = payout.amount_sats
            refund_ids.append(payout.hold_id)
        if job.absorbed_sats:
            ids.append(_subsidy_id(job))
        eval_fee = self.ledger.transfer(f"eval-fee:{job.job_id}") if job.eval_hash and not new else None
        if eval_fee is not None:
            ids.append(eval_fee.transfer_id)
        if job.charged_sats:
            ids += [f"charge:{job.job_id}"] + (
                [f"credit:charge:{job.job_id}"] if self.ledger.transfer(f"credit:charge:{job.job_id}") else []
            )
        answer: dict[str, Any] = {
            "job_id": job.job_id,
            "status": job.status.value,
            "model": job.model,
            "free_tier": {"serve": job.serve, "absorb_sats": job.absorb_sats, "charge_sats": job.invoice_sats},
            "absorbed_sats": job.absorbed_sats,
            "charged_sats": job.charged_sats,
            "refundable_sats": refundable,
            "refund_status": self.refund_status(payout, refundable),
            "receipt": {
                "quoted_sats": job.quoted_sats,
                "paid_sats": paid,
                "absorbed_sats": job.absorbed_sats,
                "charged_sats": job.charged_sats,
                "eval_fee_sats": eval_fee.amount_sats if eval_fee else 0,
                "refunded_sats": refunded,
                "transfer_ids": ids + refund_ids,
            },
        }
        if job.status is JobStatus.COMPLETE:
            answer["result"] = job.result
        if job.failure:
            answer["failure"] = job.failure
        return answer


def _awaited_hash(job: Job) -> str | None:
    """The payment hash of the invoice an unpaid job waits for (None when it waits for none)."""
    return {
        JobStatus.AWAITING_EVAL_PAYMENT: job.eval_hash,
        JobStatus.AWAITING_PAYMENT: job.invoice_hash,
        JobStatus.AWAITING_TOPUP: job.topup_hash,
    }.get(job.status)


def _count_unpaid(batch: Batch, job: Job, delta: int, bound: int | None = None) -> None:
    """The payer's open unpaid jobs (economic DoS: each costs writes and an invoice), bounded on
    creation, moved back in the transaction that takes a job out of the unpaid states."""
    key = (f"UNPAID_JOBS#{job.payer}", "UNPAID_JOBS")
    batch.bounded_counter(f"unpaid:{job.payer}", key, {"open": delta}, bound=("open", bound) if bound is not None else None)


def _subsidy_id(job: Job) -> str:
    from timmy.free_tier.service import subsidy_transfer_id

    assert job.pubkey is not None
    return subsidy_transfer_id(job.pubkey, job.job_id)
