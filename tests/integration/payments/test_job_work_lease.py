"""The work queue delivers at least once; the provider is paid per call. A job's work runs under its
work lease (one conditional write by the delivery that runs it), so the executor is called at most
once per lease: a twin delivery meanwhile runs nothing and comes back later, a delivery after the
job is final runs nothing, and a delivery after a killed worker's lease lapsed runs the work and
completes the job once. On DynamoDB Local and moto's SQS; the ledger audit runs after each test."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.template import resources
from tests.integration.payments.conftest import Lab
from timmy import messages
from timmy.errors import WorkInProgress
from timmy.jobs.model import Job, JobStatus
from timmy.jobs.service import JobSweep
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


# --- the queue's answer to a held lease, and a poison message ------------------------------------


class Records(logging.Handler):
    """The log records of the handlers' Powertools logger (service `timmy`), with their levels."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def levels(self, message: str) -> list[str]:
        return [r.levelname for r in self.records if r.getMessage() == message]


@pytest.fixture
def logged() -> Iterator[Records]:
    records, timmy = Records(), logging.getLogger("timmy")
    level, timmy.level = timmy.level, logging.INFO
    timmy.addHandler(records)
    try:
        yield records
    finally:
        timmy.removeHandler(records)
        timmy.setLevel(level)


def recording(lab: Lab) -> list[tuple[dict[str, Any], Any]]:
    """Every invocation of the lab's poller from now on: its event, and what the function answered
    (or the exception it raised, which Lambda would count as an invocation error)."""
    answers: list[tuple[dict[str, Any], Any]] = []
    invoke = lab.poller.invoke

    def record(function: str, event: dict[str, Any]) -> Any:
        try:
            answer = invoke(function, event)
        except Exception as error:
            answers.append((event, error))
            raise
        answers.append((event, answer))
        return answer

    lab.poller.invoke = record
    return answers


def emitted_metrics(output: str) -> Counter[str]:
    """The metric values flushed (EMF lines on stdout) by the handlers, by name."""
    totals: Counter[str] = Counter()
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            emf = json.loads(line)
            for definition in emf["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    value = emf[metric["Name"]]  # a list when a metric was added more than once
                    totals[metric["Name"]] += int(sum(value)) if isinstance(value, list) else int(value)
    return totals


def test_a_delivery_that_finds_the_lease_held_is_a_batch_item_failure_not_an_error_and_comes_back(
    lab: Lab, logged: Records, capsys: pytest.CaptureFixture[str]
) -> None:
    """The work queue's batches hold one message: a delivery deferred by a held lease is the whole
    batch failing. The function answers it in batchItemFailures (Lambda counts no invocation error),
    logs it at info and counts it as deferred; SQS delivers the same message again."""
    counting = executor(lab, Counting(kill_first=True))
    job_id = paid_job(lab)
    with pytest.raises(Killed):
        lab.services.jobs.execute(job_id)  # the first delivery holds the lease, and died
    answers = recording(lab)
    capsys.readouterr()

    assert lab.poller.poll_once(lab.work) == 1
    ((event, answer),) = answers
    (record,) = event["Records"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}  # answered, not raised
    assert counting.calls == 1
    assert logged.levels("message deferred; the queue delivers it again later") == ["INFO"]
    assert not [r for r in logged.records if r.levelno >= logging.WARNING]
    assert emitted_metrics(capsys.readouterr().out) == Counter({"WorkMessageDeferred": 1})

    time.sleep(1.1)  # past the test queue's visibility timeout
    assert lab.poller.poll_once(lab.work) == 1
    (again,) = answers[1][0]["Records"]
    assert again["messageId"] == record["messageId"] and again["attributes"]["ApproximateReceiveCount"] == "2"
    assert answers[1][1] == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}  # held still
    assert counting.calls == 1 and view(lab, job_id)["status"] == "executing"

    lab.clock.advance(lab.services.settings.work_lease_seconds + 1)  # the dead worker's lease lapses
    time.sleep(1.1)
    assert lab.poller.poll_once(lab.work) == 1
    assert answers[2][1] == {"batchItemFailures": []}  # ran the work: deleted
    assert counting.calls == 2 and view(lab, job_id)["status"] == "complete"
    assert lab.sqs.approximate_counts("WorkQueue") == (0, 0)
    assert emitted_metrics(capsys.readouterr().out) == Counter({"WorkMessageDeferred": 1, "WorkMessageProcessed": 1})


def test_a_poison_work_message_is_answered_failed_each_time_and_rests_in_the_dlq(lab: Lab, logged: Records) -> None:
    """A message that fails on every delivery (no such job id shape) still reaches the DLQ after
    maxReceiveCount deliveries, each answered in batchItemFailures and logged as an error."""
    answers = recording(lab)
    body = messages.encode(messages.JOB_EXECUTE, job_id="not-a-job")
    client = lab.sqs.client()
    client.send_message(QueueUrl=lab.sqs.queue_urls["WorkQueue"], MessageBody=body)
    max_receives = resources("AWS::SQS::Queue")["WorkQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    dead: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while not dead and time.monotonic() < deadline:
        lab.poller.poll_once(lab.work)
        dead = client.receive_message(QueueUrl=lab.sqs.queue_urls["WorkDeadLetterQueue"], WaitTimeSeconds=0).get("Messages", [])
    assert [m["Body"] for m in dead] == [body]
    assert len(answers) == max_receives
    for event, answer in answers:
        (record,) = event["Records"]
        assert answer == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    receive_counts = [int(e["Records"][0]["attributes"]["ApproximateReceiveCount"]) for e, _ in answers]
    assert receive_counts == list(range(1, max_receives + 1))
    assert logged.levels("message failed; the queue delivers it again, then dead-letters it") == ["ERROR"] * max_receives
    assert lab.sqs.approximate_counts("WorkQueue") == (0, 0)


# --- the sweeper and the lease ----------------------------------------------------------------


def stuck_and_leased(lab: Lab, counting: Counting) -> str:
    """A paid job past JOB_STUCK_SECONDS whose work lease a worker took just now (and died holding)."""
    job_id = paid_job(lab)
    lab.clock.advance(lab.services.settings.job_stuck_seconds + 1)
    with pytest.raises(Killed):
        lab.services.jobs.execute(job_id)
    assert counting.calls == 1
    return job_id


def test_the_sweeper_leaves_a_job_whose_lease_is_live_and_fails_it_once_the_lease_lapsed(lab: Lab) -> None:
    counting = executor(lab, Counting(kill_first=True))
    job_id = stuck_and_leased(lab, counting)
    paid = view(lab, job_id)["receipt"]["paid_sats"]
    assert lab.services.jobs.sweep() == JobSweep(failed=0, leased=1)
    assert view(lab, job_id)["status"] == "executing"

    lab.clock.advance(lab.services.settings.work_lease_seconds + 1)  # the dead worker's lease lapses
    assert lab.services.jobs.sweep() == JobSweep(failed=1, leased=0)
    done = view(lab, job_id)
    assert done["status"] == "failed" and done["charged_sats"] == 0 and done["refundable_sats"] == paid
    assert lab.run_work() == 1 and counting.calls == 1  # the message, come back: the job is final, nothing runs
    assert view(lab, job_id) == done


def test_a_claim_and_a_sweepers_fail_from_the_same_read_leave_one_winner(lab: Lab) -> None:
    """The sweeper and a late delivery both read a stuck job executing with no lease. The claim
    first: the fail, conditional on the lease, is refused and the worker completes the job. The
    fail first: the claim, conditional on the job executing, runs nothing."""
    counting = executor(lab, Counting())
    job_id = paid_job(lab)
    lab.clock.advance(lab.services.settings.job_stuck_seconds + 1)
    jobs = lab.services.jobs
    read = jobs.require(job_id)  # the sweeper's read
    claimed = jobs._claim(read)  # the worker's claim, in between
    assert jobs._fail(read, "the work did not finish in time", unless_leased=True) is None
    assert jobs.require(job_id).status is JobStatus.EXECUTING
    assert jobs._settle(claimed, 5, "an answer").status is JobStatus.COMPLETE
    done = view(lab, job_id)
    assert done["status"] == "complete" and done["receipt"]["transfer_ids"].count(f"charge:{job_id}") == 1
    assert done["charged_sats"] + done["refundable_sats"] == done["receipt"]["paid_sats"]

    job_id = paid_job(lab)
    lab.clock.advance(lab.services.settings.job_stuck_seconds + 1)
    read = jobs.require(job_id)  # read by both
    assert jobs._fail(read, "the work did not finish in time", unless_leased=True) is not None
    assert jobs._claim(read).status is JobStatus.FAILED  # the late claim: nothing to run
    assert jobs.execute(job_id) is not None and counting.calls == 0
    failed = view(lab, job_id)
    assert failed["status"] == "failed" and failed["charged_sats"] == 0
    assert failed["refundable_sats"] == failed["receipt"]["paid_sats"] > 0
    assert lab.services.jobs.require(job_id).work_attempts == 0


def test_the_sweeper_and_the_workers_racing_for_stuck_jobs_leave_one_winner_each(lab: Lab) -> None:
    """Stuck jobs, their (late) work messages delivered while the sweeper runs: each job is either
    failed by the sweeper, with nothing run or charged, or run once and completed by its worker."""
    counting = executor(lab, Counting(seconds=0.05))
    job_ids = [paid_job(lab) for _ in range(8)]
    lab.clock.advance(lab.services.settings.job_stuck_seconds + 1)
    jobs, start = lab.services.jobs, threading.Barrier(len(job_ids) + 1)

    def sweep() -> JobSweep:
        start.wait()
        return jobs.sweep()

    def deliver(job_id: str) -> Job | None:
        start.wait()
        time.sleep(0.01 * job_ids.index(job_id))  # spread across the sweep: it reaches some jobs first
        try:
            return jobs.execute(job_id)
        except WorkInProgress:  # cannot happen: one delivery per job
            raise AssertionError(job_id) from None

    with ThreadPoolExecutor(len(job_ids) + 1) as threads:
        swept = threads.submit(sweep)
        delivered = list(threads.map(deliver, job_ids))
        report = swept.result()
    views = [view(lab, job_id) for job_id in job_ids]
    complete = [v for v in views if v["status"] == "complete"]
    failed = [v for v in views if v["status"] == "failed"]
    assert len(complete) + len(failed) == len(job_ids), [v["status"] for v in views]
    assert report.failed == len(failed) and counting.calls == len(complete), (report, counting.calls, len(complete))
    for done in complete:
        assert done["charged_sats"] > 0 and done["receipt"]["transfer_ids"].count(f"charge:{done['job_id']}") == 1
        assert done["charged_sats"] + done["refundable_sats"] == done["receipt"]["paid_sats"]
    for done in failed:
        assert done["charged_sats"] == 0 and done["refundable_sats"] == done["receipt"]["paid_sats"]
    assert {j.status for j in delivered if j is not None} <= {JobStatus.COMPLETE, JobStatus.FAILED}
