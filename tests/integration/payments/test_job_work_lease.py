"""The work queue delivers at least once; the provider is paid per call. A job's work runs under its
work lease (one conditional write by the delivery that runs it), so the executor is called at most
once per lease: a twin delivery meanwhile runs nothing and comes back later, a delivery after the
job is final runs nothing, and a delivery after a killed worker's lease lapsed runs the work and
completes the job once. On DynamoDB Local and moto's SQS; the ledger audit runs after each test."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.payments.conftest import Lab
from timmy.errors import WorkInProgress
from timmy.jobs.model import Job, JobStatus
from timmy.ledger.model import escrow_account
from timmy.ports.executor import ExecutionResult
from timmy.pricing.service import TokenUsage

BODY = {"request": "Write a haiku about the sea", "model": "claude-sonnet-4-5", "max_output_tokens": 4000}
ELITE = "e" * 64


class Killed(BaseException):
    """The worker's process dying mid-call (Lambda's Timeout): nothing after it runs."""


class Counting:
    """An executor (the port, for real) that counts its calls. Each call takes `seconds`, so a twin
    delivery arrives while it runs; `kill_first` makes the first call die with its process."""

    def __init__(self, seconds: float = 0.0, kill_first: bool = False):
        self.seconds, self.kill_first = seconds, kill_first
        self.calls = 0
        self._lock = threading.Lock()

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        with self._lock:
            self.calls += 1
            first = self.calls == 1
        time.sleep(self.seconds)
        if first and self.kill_first:
            raise Killed
        return ExecutionResult("an answer", TokenUsage(10, 10))


def executor(lab: Lab, counting: Counting) -> Counting:
    lab.services.__dict__["executor"] = counting  # the cached property, injected
    return counting


def paid_job(lab: Lab) -> str:
    """A gate job, paid and booked: executing, its work message queued."""
    created = lab.api.post("/api/jobs", json_body=BODY)
    assert created.status == 201, created.body
    payment_hash = created.json["invoice"]["payment_hash"]
    lab.node.settle(payment_hash)
    lab.services.invoices.settle(payment_hash)
    return str(created.json["job_id"])


def free_job(lab: Lab) -> str:
    created = lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(ELITE, "elite"))
    assert created.status == 202, created.body
    return str(created.json["job_id"])


def view(lab: Lab, job_id: str) -> dict[str, Any]:
    answer = lab.api.get(f"/api/jobs/{job_id}")
    assert answer.status == 200, answer.body
    return dict(answer.json)


def deliver_twice_at_once(lab: Lab, job_id: str) -> list[Job | WorkInProgress | None]:
    """Two deliveries of the job's work message, in two workers at the same moment."""
    jobs, start = lab.services.jobs, threading.Barrier(2)

    def deliver(_: int) -> Job | WorkInProgress | None:
        start.wait()
        try:
            return jobs.execute(job_id)
        except WorkInProgress as held:  # the worker lets it fail: the queue redelivers it later
            return held

    with ThreadPoolExecutor(2) as threads:
        return list(threads.map(deliver, range(2)))


def test_two_concurrent_deliveries_call_the_executor_once_and_charge_once(lab: Lab) -> None:
    counting = executor(lab, Counting(seconds=0.3))
    pool = lab.pool_sats()
    paid, free = paid_job(lab), free_job(lab)
    for job_id in (paid, free):
        before = counting.calls
        outcomes = deliver_twice_at_once(lab, job_id)
        assert counting.calls - before == 1, outcomes
        # One ran the work; the other found it leased (or, when it read the job late, complete).
        done = [o for o in outcomes if isinstance(o, Job)]
        assert done and {o.status for o in done} == {JobStatus.COMPLETE}, outcomes
        row = lab.services.jobs.require(job_id)
        assert (row.status, row.work_attempts) == (JobStatus.COMPLETE, 1)
    charged = view(lab, paid)
    assert charged["charged_sats"] > 0 and charged["receipt"]["transfer_ids"].count(f"charge:{paid}") == 1
    assert charged["charged_sats"] + charged["refundable_sats"] == charged["receipt"]["paid_sats"]
    absorbed = view(lab, free)
    assert absorbed["absorbed_sats"] > 0 and absorbed["charged_sats"] == 0
    assert lab.services.free_tier.usage_today(ELITE, "elite").absorbed_sats == absorbed["absorbed_sats"]  # granted once
    assert lab.pool_sats() == pool - absorbed["absorbed_sats"] + charged["charged_sats"] * lab.services.settings.pool_credit_pct // 100


def test_a_worker_killed_holding_the_lease_blocks_redeliveries_until_it_lapses_then_the_job_completes_once(lab: Lab) -> None:
    """Through the worker function and the work queue: the first delivery takes the lease, calls
    the provider and dies; redeliveries while the lease is held run nothing (the message stays);
    once it lapsed a redelivery runs the work and completes the job; one after that runs nothing."""
    counting = executor(lab, Counting(kill_first=True))
    job_id = paid_job(lab)
    with pytest.raises(Killed):
        lab.services.jobs.execute(job_id)  # the first delivery, in a worker that dies mid-call
    assert counting.calls == 1
    assert lab.sqs.approximate_counts("WorkQueue") == (1, 0)  # its message was never deleted

    assert lab.poller.poll_once(lab.work) == 1  # a redelivery while the lease is held
    assert counting.calls == 1
    assert sum(lab.sqs.approximate_counts("WorkQueue")) == 1  # reported failed: SQS redelivers it later
    assert view(lab, job_id)["status"] == "executing"

    lab.clock.advance(lab.services.settings.work_lease_seconds + 1)  # the dead worker's lease lapses
    time.sleep(1.1)  # past the test queue's visibility timeout
    assert lab.poller.poll_once(lab.work) == 1
    assert counting.calls == 2
    assert lab.sqs.approximate_counts("WorkQueue") == (0, 0)  # done: deleted
    done = view(lab, job_id)
    assert done["status"] == "complete" and done["receipt"]["transfer_ids"].count(f"charge:{job_id}") == 1
    assert done["charged_sats"] + done["refundable_sats"] == done["receipt"]["paid_sats"]
    assert lab.services.jobs.require(job_id).work_attempts == 2

    lab.services.work_queue.send({"type": "job.execute", "job_id": job_id})  # a late twin of the message
    lab.clock.advance(lab.services.settings.work_lease_seconds + 1)
    assert lab.poller.poll_once(lab.work) == 1
    assert counting.calls == 2  # the job is final: nothing runs
    assert lab.sqs.approximate_counts("WorkQueue") == (0, 0)
    assert view(lab, job_id) == done
    assert lab.services.ledger.account(escrow_account(job_id)).computed_available_sats == done["refundable_sats"]


def test_a_delivery_that_finds_the_job_final_between_its_read_and_its_claim_runs_nothing(lab: Lab) -> None:
    """The claim is conditional on the job still executing: a delivery that read it executing just
    before another completed it does not call the executor."""
    counting = executor(lab, Counting())
    job_id = paid_job(lab)
    jobs = lab.services.jobs
    stale = jobs.require(job_id)
    assert jobs.execute(job_id) is not None and counting.calls == 1
    answer = jobs._claim(stale)  # the late delivery's claim, with what it read before the completion
    assert answer.status is JobStatus.COMPLETE and counting.calls == 1
