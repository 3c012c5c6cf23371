"""A job's row and the states it moves through (as data: each move is a conditional transition)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from timmy.clock import iso
from timmy.ledger.ledger import decimal_seconds

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


def job_key(job_id: str) -> tuple[str, str]:
    return f"JOB#{job_id}", "JOB"


@dataclass(frozen=True)
class Job:
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

    @property
    def quoted_sats(self) -> int:
        return int(self.estimate["sats"])

    def item(self) -> dict[str, Any]:
        pk, sk = job_key(self.job_id)
        item: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "type": "job",
            "job_id": self.job_id,
            "state": self.status.value,
            "tier": self.tier,
            "request": self.request,
            "model": self.model,
            "max_output_tokens": self.max_output_tokens,
            "estimate": self.estimate,
            "serve": self.serve,
            "absorb_sats": self.absorb_sats,
            "invoice_sats": self.invoice_sats,
            "reserved_sats": self.reserved_sats,
            "absorbed_sats": self.absorbed_sats,
            "charged_sats": self.charged_sats,
            "base_url": self.base_url,
            "payer": self.payer,
            "created_at": decimal_seconds(self.created_at),
        }
        for name in (
            "pubkey",
            "refund_address",
            "invoice_hash",
            "eval_hash",
            "topup_hash",
            "reservation",
            "result",
            "failure",
            "refund_payout_id",
        ):
            if getattr(self, name) is not None:
                item[name] = getattr(self, name)
        if self.executing_at is not None:
            item["executing_at"] = decimal_seconds(self.executing_at)
        if self.status is JobStatus.EXECUTING:
            item["gsi1pk"], item["gsi1sk"] = JOBS_RUNNING_PARTITION, f"{iso(self.created_at)}#{self.job_id}"
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Job:
        return cls(
            job_id=item["job_id"],
            status=JobStatus(item["state"]),
            pubkey=item.get("pubkey"),
            tier=item["tier"],
            request=item["request"],
            model=item["model"],
            max_output_tokens=int(item["max_output_tokens"]),
            estimate=dict(item["estimate"]),
            serve=item["serve"],
            absorb_sats=int(item["absorb_sats"]),
            invoice_sats=int(item["invoice_sats"]),
            created_at=float(item["created_at"]),
            refund_address=item.get("refund_address"),
            base_url=item.get("base_url", ""),
            payer=item.get("payer", ""),
            invoice_hash=item.get("invoice_hash"),
            eval_hash=item.get("eval_hash"),
            topup_hash=item.get("topup_hash"),
            reserved_sats=int(item.get("reserved_sats", 0)),
            reservation=dict(item["reservation"]) if item.get("reservation") else None,
            result=item.get("result"),
            absorbed_sats=int(item.get("absorbed_sats", 0)),
            charged_sats=int(item.get("charged_sats", 0)),
            failure=item.get("failure"),
            executing_at=float(item["executing_at"]) if "executing_at" in item else None,
            refund_payout_id=item.get("refund_payout_id"),
        )
