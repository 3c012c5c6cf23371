"""Every path of a job through `make run` itself (issue 12): the HTTP API, the simulated node's
webhook, the settlement and work queues, the worker and the sweeper in their execution environments.

One stack, configured as an operator would, through the environment `make run` passes on: the
executor sends Anthropic models to a local fake of the messages API (tests/fakes/llm_providers.py,
switched to fail or answer empty), refunds go by LNURL-pay to a local server (tests/fakes/lnurl_server.py;
LNURL_ALLOW_LOCAL, the test-only switch the in-process tests use), invoices live 60 s (the least
INVOICE_EXPIRY_SECONDS allows), the sweeper runs every second, a stuck job is failed after 66 s, the
eval fee is 3 sats and one rule of the evaluator refuses a topic.

The two paths that take a minute start first, in a module fixture, and are checked last: an unpaid
invoice expiring, and a paid partial job whose worker is killed at its 60 s Timeout (a one-shot
TIMMY_LOCAL_DELAY_FILE holds that one invocation) and then failed by the sweeper. The rest runs
meanwhile. After each path the ledger audit is clean and the job's receipt adds up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.dynamodb import free_port
from tests.e2e.test_make_run import start, wait_healthy
from tests.e2e.test_make_run_money import audit_ok, call, signed_in
from tests.fakes.llm_providers import FakeAnthropic
from tests.fakes.lnurl_server import FakeLnurlServer
from timmy.identity.signer import Keys
from timmy.invoice_codec import decode

pytestmark = pytest.mark.slow

MODEL = "claude-sonnet-4-5"  # an Anthropic model: the fake messages API answers it
BODY = {"request": "Write a haiku about the sea", "model": MODEL, "max_output_tokens": 4000}
PARTIAL_BODY = {**BODY, "max_output_tokens": 64000}  # above a trusted identity's 200-sat budget
EVAL_FEE_SATS = 3
TRUSTED_BUDGET_SATS = 200  # FREE_TIER_BUDGET_TRUSTED's default
POOL_CREDIT_PCT = 10  # POOL_CREDIT_PCT's default
JOB_STUCK_SECONDS = 66  # above the worker's 60 s Timeout (its environment warm): the kill comes first
WORKER_TIMEOUT_SECONDS = 60  # template.yaml's WorkerFunction Timeout
FINAL = ("complete", "failed", "expired")


@dataclass
class Stack:
    port: int
    anthropic: FakeAnthropic
    lnurl: FakeLnurlServer
    delay_file: Path
    console: list[str] = field(default_factory=list)  # make run's output, read as it comes (a full pipe would block it)

    def get(self, path: str) -> Any:
        status, body = call(self.port, "GET", path)
        assert status == 200, (path, body)
        return body

    def job(self, job_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.get(f"/api/jobs/{job_id}")
        return answer

    def wait_job(self, job_id: str, done: Callable[[dict[str, Any]], bool], seconds: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            job = self.job(job_id)
            if done(job) or time.monotonic() > deadline:
                return job
            time.sleep(0.05)

    def pay(self, invoice: dict[str, Any]) -> None:
        status, paid = call(self.port, "POST", "/dev/lightning/pay", {"bolt11": invoice["bolt11"]})
        assert (status, paid.get("status")) == (200, "paid"), paid

    def identity(self, tier: str) -> dict[str, str]:
        """A fresh identity of `tier`, signed in: its bearer header."""
        return signed_in(self.port, Keys.generate(), tier)

    def me(self, bearer: dict[str, str]) -> dict[str, Any]:
        status, me = call(self.port, "GET", "/api/identity/me", headers=bearer)
        assert status == 200, me
        return dict(me)

    def pool_sats(self) -> int:
        return int(self.get("/api/pool")["balance_sats"])

    def paid_out(self, bolt11: str) -> int:
        """How many payouts the simulated node made to this invoice."""
        payment_hash = decode(bolt11).payment_hash
        return [p["payment_hash"] for p in self.get("/dev/lightning/invoices")["payouts"]].count(payment_hash)

    def refund_twice(self, job: dict[str, Any]) -> None:
        """Claim the job's refundable sats twice with one invoice: paid once, for exactly that."""
        status, wallet = call(self.port, "POST", "/dev/lightning/invoices", {"amount_sats": job["refundable_sats"]})
        assert status == 201, wallet
        for _ in range(2):
            status, refunded = call(self.port, "POST", f"/api/jobs/{job['job_id']}/refund", {"invoice": wallet["bolt11"]})
            assert (status, refunded["payout"]["status"]) == (200, "paid"), refunded
        assert self.paid_out(wallet["bolt11"]) == 1
        after = self.job(job["job_id"])
        assert (after["refundable_sats"], after["refund_status"]) == (0, "paid")
        assert after["receipt"]["refunded_sats"] == job["refundable_sats"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    anthropic, lnurl = FakeAnthropic(), FakeLnurlServer()
    data = tmp_path_factory.mktemp("make-run-jobs")
    delay_file = data / "delay"
    configuration = {
        "EXECUTOR_BACKEND": "providers",
        "ANTHROPIC_BASE_URL": anthropic.base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test",
        "LNURL_ALLOW_LOCAL": "true",  # tests only: Lightning addresses at 127.0.0.1:PORT over http
        "INVOICE_EXPIRY_SECONDS": "60",
        "SWEEP_INTERVAL_SECONDS": "1",
        "JOB_STUCK_SECONDS": str(JOB_STUCK_SECONDS),
        "EVAL_FEE_SATS": str(EVAL_FEE_SATS),
        "EVAL_DISALLOWED_PATTERNS": json.dumps(["forbidden topic"]),
        "TIMMY_LOCAL_DELAY_FILE": str(delay_file),
    }
    port = free_port()
    process = start(port, data / "data", configuration)
    running = Stack(port, anthropic, lnurl, delay_file)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.console.append(line.decode(errors="replace"))

    reader = threading.Thread(target=read, name="make-run-console", daemon=True)
    try:
        wait_healthy(port, process, 90)
        reader.start()
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            returncode = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
        reader.join(timeout=10)
        anthropic.close()
        lnurl.close()
    assert returncode == 0 and not reader.is_alive(), "make run did not stop cleanly (an environment kept its console open?)"


@dataclass(frozen=True)
class Slow:
    """The two paths that take a minute, started before the others."""

    expiring: dict[str, Any]  # an anonymous job whose (eval fee) invoice is never paid
    killed: dict[str, Any]  # a paid partial job whose worker is held past its Timeout
    killed_bearer: dict[str, str]
    claimed_at: float  # when the worker took the killed job's message (and the delay)


@pytest.fixture(scope="module", autouse=True)
def slow(stack: Stack) -> Slow:
    status, expiring = call(stack.port, "POST", "/api/jobs", BODY)
    assert (status, expiring["status"]) == (201, "awaiting_eval_payment"), expiring

    # A first (free) job warms a worker environment, so the held job's message is taken at once.
    status, warm = call(stack.port, "POST", "/api/jobs", BODY, stack.identity("elite"))
    assert (status, stack.wait_job(warm["job_id"], lambda j: j["status"] in FINAL)["status"]) == (202, "complete"), warm

    bearer = stack.identity("trusted")
    tmp = stack.delay_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"function": "WorkerFunction", "seconds": WORKER_TIMEOUT_SECONDS + 30}))
    tmp.rename(stack.delay_file)  # whole, at once: the next worker invocation claims it
    status, killed = call(stack.port, "POST", "/api/jobs", PARTIAL_BODY, bearer)
    assert (status, killed["free_tier"]["serve"]) == (201, "partial"), killed
    stack.pay(killed["invoice"])
    executing = stack.wait_job(killed["job_id"], lambda j: j["status"] != "awaiting_payment")
    assert executing["status"] == "executing", executing
    executing_at = time.monotonic()
    deadline = executing_at + 20
    while stack.delay_file.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not stack.delay_file.exists(), "the worker never took the job's message"
    claimed_at = time.monotonic()
    # The sweeper may fail the job only after the kill, as in AWS (JOB_STUCK_SECONDS > the Timeout).
    assert claimed_at - executing_at < JOB_STUCK_SECONDS - WORKER_TIMEOUT_SECONDS - 3
    return Slow(expiring, killed, bearer, claimed_at)


@pytest.fixture
def provider(stack: Stack) -> Iterator[FakeAnthropic]:
    try:
        yield stack.anthropic
    finally:
        stack.anthropic.mode = "ok"


def pay_gate(stack: Stack, created: dict[str, Any]) -> dict[str, Any]:
    """A gate job with the eval fee: pay the fee, read the work's invoice on the job, pay it."""
    assert (created["status"], created["invoice"]["amount_sats"]) == ("awaiting_eval_payment", EVAL_FEE_SATS), created
    stack.pay(created["invoice"])
    waiting = stack.wait_job(created["job_id"], lambda j: j["status"] != "awaiting_eval_payment")
    assert waiting["status"] == "awaiting_payment", waiting
    invoice: dict[str, Any] = waiting["invoice"]
    assert invoice["amount_sats"] == created["receipt"]["quoted_sats"] and invoice["payment_hash"] != created["invoice"]["payment_hash"]
    stack.pay(invoice)
    return invoice


def test_eval_rejected_jobs_leave_no_invoice_and_no_reservation(stack: Stack) -> None:
    bearer = stack.identity("elite")
    invoices_before = len(stack.get("/dev/lightning/invoices")["invoices"])
    for body, expected in (
        ({**BODY, "request": "Tell me about the forbidden topic"}, (422, "disallowed_content")),
        ({**BODY, "request": ""}, (400, None)),
        ({**BODY, "model": "no-such-model"}, (400, None)),
        ({**BODY, "request": "x" * 40_000}, (413, None)),
    ):
        for headers in (bearer, None):
            status, answer = call(stack.port, "POST", "/api/jobs", body, headers)
            assert status == expected[0], answer
            assert answer["error"]["code"] == (expected[1] or answer["error"]["code"])
    assert len(stack.get("/dev/lightning/invoices")["invoices"]) == invoices_before
    assert stack.me(bearer)["reserved_sats"] == 0
    audit_ok(stack.port)


def test_a_partial_job_pays_the_rest_and_the_pool_absorbs_at_most_the_budget(stack: Stack) -> None:
    bearer = stack.identity("trusted")
    pool = stack.pool_sats()
    status, created = call(stack.port, "POST", "/api/jobs", PARTIAL_BODY, bearer)
    assert status == 201 and created["status"] == "awaiting_payment", created
    assert created["free_tier"] == {
        "serve": "partial",
        "absorb_sats": TRUSTED_BUDGET_SATS,
        "charge_sats": created["invoice"]["amount_sats"],
    }
    assert created["invoice"]["amount_sats"] == created["receipt"]["quoted_sats"] - TRUSTED_BUDGET_SATS
    assert stack.me(bearer)["reserved_sats"] == 0  # advisory: nothing held before the payment
    stack.pay(created["invoice"])
    done = stack.wait_job(created["job_id"], lambda j: j["status"] in FINAL)
    assert done["status"] == "complete" and done["result"], done
    absorbed, charged = done["absorbed_sats"], done["charged_sats"]
    assert 0 < absorbed <= TRUSTED_BUDGET_SATS
    assert charged + done["refundable_sats"] == created["invoice"]["amount_sats"] == done["receipt"]["paid_sats"]
    me = stack.me(bearer)
    assert (me["absorbed_sats"], me["reserved_sats"]) == (absorbed, 0)
    assert stack.pool_sats() == pool - absorbed + charged * POOL_CREDIT_PCT // 100
    assert done["refund_status"] == "claimable"
    audit_ok(stack.port)


def test_with_the_eval_fee_a_gate_job_pays_the_fee_then_the_work(stack: Stack) -> None:
    status, created = call(stack.port, "POST", "/api/jobs", BODY)
    assert status == 201, created
    assert stack.job(created["job_id"])["invoice"] == created["invoice"]  # the awaited invoice, on the job too
    invoice = pay_gate(stack, created)
    done = stack.wait_job(created["job_id"], lambda j: j["status"] in FINAL)
    assert done["status"] == "complete" and "invoice" not in done, done
    receipt = done["receipt"]
    assert receipt["eval_fee_sats"] == EVAL_FEE_SATS and done["absorbed_sats"] == 0
    assert receipt["paid_sats"] == EVAL_FEE_SATS + invoice["amount_sats"] == EVAL_FEE_SATS + done["charged_sats"] + done["refundable_sats"]
    assert 0 < done["charged_sats"] <= receipt["quoted_sats"] and done["refund_status"] == "claimable"
    audit_ok(stack.port)


@pytest.mark.parametrize("mode", ["bad_request", "empty"], ids=["work-failed", "empty-output"])
def test_work_that_fails_or_comes_back_empty_is_never_charged_and_its_refund_is_paid_once(
    stack: Stack, provider: FakeAnthropic, mode: str
) -> None:
    provider.mode = mode  # the provider answers 400, or 200 with no text
    bearer = stack.identity("elite")
    pool = stack.pool_sats()
    status, free = call(stack.port, "POST", "/api/jobs", BODY, bearer)
    assert (status, free["status"]) == (202, "executing"), free
    status, gate = call(stack.port, "POST", "/api/jobs", BODY)
    assert status == 201, gate
    invoice = pay_gate(stack, gate)
    for created in (free, gate):
        done = stack.wait_job(created["job_id"], lambda j: j["status"] in FINAL)
        assert done["status"] == "failed" and done["failure"], done
        assert (done["charged_sats"], done["absorbed_sats"]) == (0, 0)
    assert stack.me(bearer)["reserved_sats"] == stack.me(bearer)["absorbed_sats"] == 0  # the reservation went back
    free_done = stack.job(free["job_id"])
    assert (free_done["refundable_sats"], free_done["refund_status"]) == (0, "none")
    gate_done = stack.job(gate["job_id"])
    # Every sat paid for the work is refundable; the eval fee paid for the evaluation, which ran.
    assert gate_done["refundable_sats"] == invoice["amount_sats"] == gate_done["receipt"]["paid_sats"] - EVAL_FEE_SATS
    assert stack.pool_sats() == pool + EVAL_FEE_SATS * POOL_CREDIT_PCT // 100
    stack.refund_twice(gate_done)
    audit_ok(stack.port)


def test_a_refund_address_is_paid_automatically_and_an_unreachable_one_leaves_it_claimable(stack: Stack) -> None:
    status, created = call(stack.port, "POST", "/api/jobs", {**BODY, "refund_address": stack.lnurl.address("alice")})
    assert status == 201, created
    invoice = pay_gate(stack, created)
    done = stack.wait_job(created["job_id"], lambda j: j["refund_status"] == "paid")
    assert done["status"] == "complete" and done["refund_status"] == "paid" and done["refundable_sats"] == 0, done
    refunded = done["receipt"]["refunded_sats"]
    assert refunded == invoice["amount_sats"] - done["charged_sats"] > 0
    (bolt11,) = stack.lnurl.invoices  # the LNURL-pay server's invoice, for exactly the refund
    assert decode(bolt11).amount_sats == refunded and stack.paid_out(bolt11) == 1
    audit_ok(stack.port)

    stack.lnurl.mode = "server_error"
    try:
        status, created = call(stack.port, "POST", "/api/jobs", {**BODY, "refund_address": stack.lnurl.address("bob")})
        assert status == 201, created
        pay_gate(stack, created)
        done = stack.wait_job(created["job_id"], lambda j: j["status"] in FINAL)
    finally:
        stack.lnurl.mode = "ok"
    assert done["status"] == "complete" and done["refund_status"] == "claimable" and done["refundable_sats"] > 0, done
    stack.refund_twice(done)  # never lost: claimable by hand, paid once
    audit_ok(stack.port)


def test_an_unpaid_invoice_expires_with_its_job(stack: Stack, slow: Slow) -> None:
    expires_at = slow.expiring["invoice"]["expires_at"]
    done = stack.wait_job(slow.expiring["job_id"], lambda j: j["status"] in FINAL, seconds=max(0, expires_at - time.time()) + 30)
    assert done["status"] == "expired" and "invoice" not in done, done
    assert (done["refundable_sats"], done["refund_status"], done["receipt"]["paid_sats"]) == (0, "none", 0)
    payment_hash = slow.expiring["invoice"]["payment_hash"]
    (invoice,) = [i for i in stack.get("/dev/lightning/invoices")["invoices"] if i["payment_hash"] == payment_hash]
    assert invoice["state"] == "expired"
    status, refused = call(stack.port, "POST", "/dev/lightning/pay", {"bolt11": slow.expiring["invoice"]["bolt11"]})
    assert status == 409, refused  # too late to pay
    audit_ok(stack.port)


def test_a_job_whose_worker_is_killed_is_failed_by_the_sweeper_nothing_charged(stack: Stack, slow: Slow) -> None:
    job_id = slow.killed["job_id"]
    seconds = JOB_STUCK_SECONDS + 30 - (time.monotonic() - slow.claimed_at)
    done = stack.wait_job(job_id, lambda j: j["status"] in FINAL, seconds=max(seconds, 1))
    assert done["status"] == "failed" and done["failure"] == "the work did not finish in time", done
    # Lambda's Timeout killed the worker first (the local stack says so); the sweeper failed the job after.
    assert any(f"WorkerFunction timed out after {WORKER_TIMEOUT_SECONDS} s" in line for line in stack.console), stack.console[-20:]
    assert (done["charged_sats"], done["absorbed_sats"]) == (0, 0)
    assert done["refundable_sats"] == slow.killed["invoice"]["amount_sats"] == done["receipt"]["paid_sats"]
    me = stack.me(slow.killed_bearer)
    assert (me["reserved_sats"], me["absorbed_sats"]) == (0, 0)  # the partial grant held at payment went back
    stack.refund_twice(done)
    audit_ok(stack.port)
