"""A job's row and the states it moves through (as data: each move is a conditional transition)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from timmy.clock import iso
from timmy.ledger.rows import Row

JOBS_RUNNING_PARTITION = "JOBS_RUNNING"  # sparse gsi1 entries of executing jobs, for the sweeper


class JobStatus(StrEnum):
    AWAITING_EVAL_PAYMENT = "awaiting_eval_payment"  # a gate job with EVAL_FEE_SATS set: the eval fee first
    AWAITING_PAYMENT = "awaiting_payment"
    AWAITING_TOPUP = "awaiting_topup"  # paid, but the pool could no longer cover the partial grant
    EXECUTING = "executing"
    COMPLETE = "complete"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"


FINAL = frozenset({JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED})
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.AWAITING_EVAL_PAYMENT: frozenset({JobStatus.AWAITING_PAYMENT, JobStatus.EXPIRED}),
    JobStatus.AWAITING_PAYMENT: frozenset({JobStatus.AWAITING_TOPUP, JobStatus.EXECUTING, JobStatus.EXPIRED}),
    JobStatus.AWAITING_TOPUP: frozenset({JobStatus.EXECUTING, JobStatus.EXPIRED}),
    JobStatus.EXECUTING: frozenset({JobStatus.COMPLETE, JobStatus.FAILED}),
    JobStatus.COMPLETE: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.REJECTED: frozenset(),
    JobStatus.EXPIRED: frozenset(),
}
# The work's lease (a claim, not a move: the job stays where it is). A delivery of the work message
# runs the executor only once it has taken the lease in this state; another delivery finds it held
# until it lapses (WORK_LEASE_SECONDS, longer than the worker can live), and a final job has none.
WORK_LEASED_IN = JobStatus.EXECUTING
WORK_LEASE = "work_lease_until"  # the Job field (an instant) the lease is kept in


@dataclass(frozen=True)
class Job(Row, kind="job", id_field="job_id"):
    job_id: str
    status: JobStatus
    pubkey: str | None  # None: anonymous (always gate)
    tier: str
    request: str
    model: str
    max_output_tokens: int
    estimate: dict[str, Any]  # Estimate.as_dict(): what was quoted
    serve: str  # the decision at creation: free | partial | gate
    absorb_sats: int  # the decision's subsidy (free and partial)
    invoice_sats: int  # what the first invoice asked (0 on the free path)
    created_at: float
    refund_address: str | None = None
    payer: str = ""  # whose unpaid jobs this counts against: the pubkey, or ip:<address> when anonymous
    base_url: str = ""  # where the caller reached Timmy: the webhook of a later (top-up) invoice
    invoice_hash: str | None = None
    eval_hash: str | None = None  # the eval fee's invoice (EVAL_FEE_SATS)
    topup_hash: str | None = None
    reserved_sats: int = 0  # the pool hold actually taken (free: at decision; partial: at payment)
    reservation: dict[str, Any] | None = None  # that hold as taken (Reservation.as_item): the grant settles it unread
    result: str | None = None
    absorbed_sats: int = 0
    charged_sats: int = 0
    failure: str | None = None
    refund_payout_id: str | None = None
    executing_at: float | None = None  # when the work could start (its message sent)
    work_lease_until: float | None = None  # WORK_LEASE: the delivery running the work holds it until then
    work_attempts: int = 0  # how many deliveries took the lease (ran the work at the executor)

    @property
    def quoted_sats(self) -> int:
        return int(self.estimate["sats"])

    def index_entry(self) -> tuple[str, str] | None:
        if self.status is not JobStatus.EXECUTING:
            return None
        return JOBS_RUNNING_PARTITION, f"{iso(self.created_at)}#{self.job_id}"


job_key = Job.key_of
