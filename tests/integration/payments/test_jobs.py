"""Jobs end to end in process (issue 12): the routes, the settlement and work queues and their
handlers, on DynamoDB Local and moto's SQS — free, partial, gate, failed, empty, expired, refunded.
The ledger's invariants are checked after every test (the `table_name` fixture)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.lnurl_server import FakeLnurlServer
from tests.integration.payments.conftest import Lab
from timmy.free_tier.service import Reservation
from timmy.identity.signer import Keys
from timmy.jobs.service import WORK_RESEND_AFTER_SECONDS
from timmy.ledger.model import POOL, escrow_account
from timmy.metering import Estimate
from timmy.ports.executor import EmptyOutput, ExecutionFailed, ExecutionResult
from timmy.pricing.service import TokenUsage

MODEL = "claude-sonnet-4-5"
BODY = {"request": "Write a haiku about the sea", "model": MODEL, "max_output_tokens": 4000}
ELITE, TRUSTED = "e" * 64, "d" * 64


def job(lab: Lab, job_id: str) -> dict[str, Any]:
    answer = lab.api.get(f"/api/jobs/{job_id}")
    assert answer.status == 200, answer.body
    return dict(answer.json)


def test_a_free_job_is_reserved_at_once_worked_and_granted_its_actual_cost(lab: Lab) -> None:
    pool = lab.pool_sats()
    created = lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(ELITE, "elite"))
    assert created.status == 202, created.body
    assert created.json["status"] == "executing" and "invoice" not in created.json
    lab.run_work()
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete" and done["result"]
    assert done["charged_sats"] == 0 and done["refundable_sats"] == 0
    assert 0 < done["absorbed_sats"] <= done["receipt"]["quoted_sats"]
    assert lab.pool_sats() == pool - done["absorbed_sats"]  # the actual cost, not the quote
    assert any(t.startswith("subsidy:") for t in done["receipt"]["transfer_ids"])


class Sized:
    """An executor whose answer used `output_tokens` (a long answer: the partial's grant cannot cover it)."""

    def __init__(self, output_tokens: int):
        self.output_tokens = output_tokens

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        return ExecutionResult("a long answer", TokenUsage(10, min(self.output_tokens, max_output_tokens)))


def test_the_worker_settles_a_free_or_partial_job_in_three_round_trips(lab: Lab) -> None:
    """The job row keeps the reservation as taken, so the grant settles it without reading it, in
    the transaction that charges the rest and completes the job: read the job, take its work lease
    (one conditional write: the executor runs once per lease), then one transaction — 3 DynamoDB
    calls, not 5; with a charge beside the grant too."""
    usage = lab.services.store.usage  # type: ignore[attr-defined]
    pool = lab.pool_sats()
    free = lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(ELITE, "elite"))
    assert free.status == 202, free.body
    before = usage.snapshot()[0]
    assert lab.poller.poll_once(lab.work) == 1
    assert usage.snapshot()[0] - before == 3
    done = job(lab, free.json["job_id"])
    assert done["status"] == "complete" and done["absorbed_sats"] > 0 and done["charged_sats"] == 0
    assert lab.pool_sats() == pool - done["absorbed_sats"]

    lab.services.__dict__["executor"] = Sized(64000)  # the work costs more than the grant held
    partial = lab.api.post("/api/jobs", json_body={**BODY, "max_output_tokens": 64000}, headers=lab.bearer(TRUSTED, "trusted"))
    assert partial.json["free_tier"]["serve"] == "partial"
    held = partial.json["free_tier"]["absorb_sats"]
    lab.node.settle(partial.json["invoice"]["payment_hash"])
    lab.services.invoices.settle(partial.json["invoice"]["payment_hash"])  # reserves the grant at payment time
    pool = lab.pool_sats()
    before = usage.snapshot()[0]
    assert lab.poller.poll_once(lab.work) == 1
    assert usage.snapshot()[0] - before == 3
    done = job(lab, partial.json["job_id"])
    charged = done["charged_sats"]
    assert done["status"] == "complete" and done["absorbed_sats"] == held and charged > 0
    assert charged + done["refundable_sats"] == partial.json["invoice"]["amount_sats"]
    assert lab.pool_sats() == pool - held + charged * lab.services.settings.pool_credit_pct // 100
    assert lab.services.free_tier.usage_today(TRUSTED, "trusted").absorbed_sats == held  # the grant's day counter, once


def test_a_worker_that_crashed_after_its_grant_is_completed_by_the_redelivery(lab: Lab) -> None:
    """The one transaction is refused when the hold is already settled (an earlier attempt granted,
    then crashed before completing): the redelivered message settles step by step, reading, and
    the grant counts once."""
    lab.services.__dict__["executor"] = Sized(100)
    pool = lab.pool_sats()
    created = lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(ELITE, "elite"))
    row = lab.services.jobs.require(created.json["job_id"])
    assert row.reservation is not None
    actual = lab.services.pricing.actual_charge_sats(TokenUsage(10, 100), row.model, Estimate.from_dict(row.estimate))
    granted = min(actual, row.reserved_sats)
    reservation = Reservation.from_item(row.reservation)
    lab.services.free_tier.record_grant(ELITE, row.job_id, granted, row.reserved_sats, paid_for=row.job_id, reservation=reservation)
    lab.run_work()
    done = job(lab, row.job_id)
    assert done["status"] == "complete" and done["absorbed_sats"] == granted and done["charged_sats"] == actual - granted == 0
    assert lab.pool_sats() == pool - granted


def test_creating_a_free_job_is_the_identity_and_one_transaction(lab: Lab) -> None:
    """The reservation (unread: its conditions are the decision) and the executing job that keeps
    it commit together: the caller's identity, then 1 transaction — 2 DynamoDB calls."""
    lab.pool_sats()  # past the cold start's seeding
    bearer = lab.bearer(ELITE, "elite")
    usage = lab.services.store.usage  # type: ignore[attr-defined]
    before = usage.snapshot()[0]
    created = lab.api.post("/api/jobs", json_body=BODY, headers=bearer)
    assert created.status == 202 and created.json["free_tier"]["serve"] == "free", created.body
    assert usage.snapshot()[0] - before == 2
    row = lab.services.jobs.require(created.json["job_id"])
    assert (
        row.reservation is not None
        and row.reserved_sats == lab.services.ledger.require_transfer(row.reservation["transfer_id"]).amount_sats
    )


def test_a_free_job_the_pool_can_no_longer_cover_is_decided_again_on_a_read(lab: Lab) -> None:
    """Refused by the pool, the one transaction wrote nothing (no job, no hold): the decision is
    taken again on what is read — partial, for what the pool still has — as after any lost race."""
    ledger = lab.services.ledger
    lab.pool_sats()
    per_job = int(lab.api.post("/api/estimate", json_body=BODY).json["estimated_sats"])
    left = per_job // 2
    ledger.create_transfer("drain", POOL, "operator-equity", ledger.account(POOL).computed_available_sats - left, "test_drain")
    created = lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(ELITE, "elite"))
    assert created.status == 201, created.body
    assert created.json["free_tier"]["serve"] == "partial" and created.json["free_tier"]["absorb_sats"] == left
    assert created.json["invoice"]["amount_sats"] == per_job - left
    assert ledger.account(POOL).debits_pending == 0  # advisory: nothing held until the work is paid


def test_creating_an_anonymous_gate_job_is_one_transaction(lab: Lab) -> None:
    """The POST's answer shows a receipt of nothing paid without reading for it, and an anonymous
    caller is gated without reading the pool: the job and its invoice in 1 DynamoDB call."""
    lab.pool_sats()  # past the cold start's seeding
    usage = lab.services.store.usage  # type: ignore[attr-defined]
    before = usage.snapshot()[0]
    created = lab.api.post("/api/jobs", json_body=BODY)
    assert created.status == 201 and created.json["receipt"]["paid_sats"] == 0, created.body
    assert usage.snapshot()[0] - before == 1


def test_a_gate_job_is_paid_charged_its_actual_cost_and_refunded_the_rest_once(lab: Lab) -> None:
    pool = lab.pool_sats()
    created = lab.api.post("/api/jobs", json_body=BODY)
    assert created.status == 201 and created.json["status"] == "awaiting_payment", created.body
    invoice = created.json["invoice"]
    assert invoice["amount_sats"] == created.json["receipt"]["quoted_sats"]
    lab.pay_and_settle(invoice["payment_hash"])
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete" and done["absorbed_sats"] == 0
    charged, refundable = done["charged_sats"], done["refundable_sats"]
    assert charged > 0 and charged + refundable == invoice["amount_sats"] == done["receipt"]["paid_sats"]
    assert lab.pool_sats() == pool + charged * lab.services.settings.pool_credit_pct // 100
    assert done["refund_status"] == "claimable"

    wrong = lab.node.wallet_invoice(refundable + 1)
    refused = lab.api.post(f"/api/jobs/{done['job_id']}/refund", json_body={"invoice": wrong.bolt11})
    assert (refused.status, refused.error_code) == (400, "invoice_amount_mismatch")
    wallet = lab.node.wallet_invoice(refundable)
    first = lab.api.post(f"/api/jobs/{done['job_id']}/refund", json_body={"invoice": wallet.bolt11})
    again = lab.api.post(f"/api/jobs/{done['job_id']}/refund", json_body={"invoice": wallet.bolt11})
    assert first.status == again.status == 200, first.body
    assert first.json["payout"]["status"] == again.json["payout"]["status"] == "paid"
    assert [p["payment_hash"] for p in lab.node.listing()["payouts"]] == [wallet.payment_hash]  # paid once
    after = job(lab, done["job_id"])
    assert after["refundable_sats"] == 0 and after["refund_status"] == "paid" and after["receipt"]["refunded_sats"] == refundable


def test_a_partial_job_pays_the_rest_and_the_pool_absorbs_at_most_what_was_held(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = lab.services.settings.daily_budget_sats("trusted")
    created = lab.api.post("/api/jobs", json_body={**BODY, "max_output_tokens": 64000}, headers=lab.bearer(TRUSTED, "trusted"))
    assert created.status == 201, created.body
    decision = created.json["free_tier"]
    assert decision["serve"] == "partial" and decision["absorb_sats"] == budget
    assert created.json["invoice"]["amount_sats"] == created.json["receipt"]["quoted_sats"] - budget
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete"
    assert done["absorbed_sats"] <= budget
    assert done["charged_sats"] + done["refundable_sats"] == created.json["invoice"]["amount_sats"]


def test_a_pool_drained_before_the_payment_asks_for_the_shortfall_with_a_second_invoice(lab: Lab) -> None:
    headers = lab.bearer(TRUSTED, "trusted")
    created = lab.api.post("/api/jobs", json_body={**BODY, "max_output_tokens": 64000}, headers=headers)
    assert created.json["free_tier"]["serve"] == "partial"
    # Others drain the pool between the decision and the payment.
    lab.services.ledger.create_transfer(
        "drain", POOL, "operator-equity", lab.services.ledger.account(POOL).computed_available_sats, "test_drain"
    )
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    waiting = lab.api.get(f"/api/jobs/{created.json['job_id']}").json
    assert waiting["status"] == "awaiting_topup"
    topup = lab.services.jobs.require(created.json["job_id"])
    assert topup.topup_hash and topup.reserved_sats == 0
    # The caller reads the shortfall's invoice on the job.
    assert waiting["invoice"]["payment_hash"] == topup.topup_hash
    assert waiting["invoice"]["amount_sats"] == created.json["free_tier"]["absorb_sats"]
    lab.pay_and_settle(topup.topup_hash)
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete" and done["absorbed_sats"] == 0
    assert done["charged_sats"] + done["refundable_sats"] == created.json["receipt"]["quoted_sats"] == done["receipt"]["paid_sats"]


class Failing:
    def __init__(self, error: Exception | None = None, text: str = ""):
        self.error, self.text = error, text

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        if self.error is not None:
            raise self.error
        return ExecutionResult(self.text, TokenUsage(10, 10))


@pytest.mark.parametrize(
    "executor", [Failing(ExecutionFailed("the provider refused")), Failing(EmptyOutput("nothing")), Failing(text="  ")]
)
def test_work_that_fails_or_comes_back_empty_is_never_charged(lab: Lab, executor: Failing) -> None:
    lab.services.__dict__["executor"] = executor
    pool = lab.pool_sats()
    free = lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(ELITE, "elite"))
    gate = lab.api.post("/api/jobs", json_body=BODY)
    lab.run_work()
    lab.pay_and_settle(gate.json["invoice"]["payment_hash"])
    for created in (free, gate):
        done = job(lab, created.json["job_id"])
        assert done["status"] == "failed" and done["charged_sats"] == 0 and done["absorbed_sats"] == 0
    assert job(lab, gate.json["job_id"])["refundable_sats"] == gate.json["invoice"]["amount_sats"]
    assert lab.pool_sats() == pool  # the free job's reservation went back
    assert lab.services.ledger.account(escrow_account(gate.json["job_id"])).computed_available_sats == gate.json["invoice"]["amount_sats"]


def test_an_unpaid_job_expires_with_its_invoice(lab: Lab) -> None:
    created = lab.api.post("/api/jobs", json_body=BODY)
    lab.clock.advance(lab.services.settings.invoice_expiry_seconds + 1)
    assert lab.services.invoices.sweep().expired == 1
    done = job(lab, created.json["job_id"])
    assert done["status"] == "expired" and done["refundable_sats"] == 0 and done["refund_status"] == "none"


@pytest.mark.parametrize(
    ("body", "status"),
    [({"request": ""}, 400), ({"request": "x", "model": "no-such-model"}, 400), ({"request": "x" * 40_000}, 413), ({"nope": 1}, 400)],
)
def test_bad_jobs_are_refused_and_leave_nothing(lab: Lab, body: dict[str, object], status: int) -> None:
    answer = lab.api.post("/api/jobs", json_body=body)
    assert answer.status == status and answer.json["error"]["code"]
    assert lab.node.listing()["invoices"] == []


def test_refunds_before_the_job_is_final_or_of_nothing_are_refused(lab: Lab) -> None:
    created = lab.api.post("/api/jobs", json_body=BODY)
    early = lab.api.post(f"/api/jobs/{created.json['job_id']}/refund", json_body={"invoice": lab.node.wallet_invoice(5).bolt11})
    assert (early.status, early.error_code) == (409, "job_not_final")
    assert lab.api.get("/api/jobs/" + "0" * 32).status == 404
    assert lab.api.get("/api/jobs/not-a-job").status == 404


def test_anonymous_unpaid_jobs_are_capped_and_an_expired_one_frees_its_place(lab: Lab) -> None:
    cap = lab.services.settings.max_unpaid_jobs
    created = [lab.api.post("/api/jobs", json_body=BODY) for _ in range(cap)]
    assert [c.status for c in created] == [201] * cap
    refused = lab.api.post("/api/jobs", json_body=BODY)
    assert (refused.status, refused.error_code) == (429, "too_many_unpaid_jobs")
    lab.pay_and_settle(created[0].json["invoice"]["payment_hash"])  # a paid job no longer counts
    assert lab.api.post("/api/jobs", json_body=BODY).status == 201
    assert lab.api.post("/api/jobs", json_body=BODY).status == 429
    # Another identity has its own allowance.
    assert lab.api.post("/api/jobs", json_body=BODY, headers=lab.bearer(Keys.generate().pubkey, "new")).status == 201


def test_a_job_whose_work_never_finishes_is_failed_by_the_sweeper_and_refundable(lab: Lab) -> None:
    created = lab.api.post("/api/jobs", json_body=BODY)
    lab.node.settle(created.json["invoice"]["payment_hash"])
    lab.services.invoices.settle(created.json["invoice"]["payment_hash"])  # booked; the work message is never run
    assert job(lab, created.json["job_id"])["status"] == "executing"
    assert lab.services.jobs.sweep().failed == 0  # not stuck yet
    lab.clock.advance(lab.services.settings.job_stuck_seconds + 1)
    assert lab.services.jobs.sweep().failed == 1
    done = job(lab, created.json["job_id"])
    assert done["status"] == "failed" and done["charged_sats"] == 0
    assert done["refundable_sats"] == created.json["invoice"]["amount_sats"]
    lab.run_work()  # the late message finds the job final: nothing happens
    assert job(lab, created.json["job_id"])["status"] == "failed"


def test_a_repeated_notification_resends_the_work_only_when_the_first_message_may_be_lost(lab: Lab) -> None:
    """A twin notification (the sweeper's booking racing the webhook's) must not run the work twice;
    a settlement redelivered after a crash between the start and the send must send it."""
    created = lab.api.post("/api/jobs", json_body=BODY)
    payment_hash = created.json["invoice"]["payment_hash"]
    lab.node.settle(payment_hash)
    lab.services.invoices.settle(payment_hash)  # booked: the job starts, one work message
    assert lab.sqs.approximate_counts("WorkQueue") == (1, 0)
    lab.services.invoices.settle(payment_hash)  # its twin, moments later
    assert lab.sqs.approximate_counts("WorkQueue") == (1, 0)
    lab.clock.advance(WORK_RESEND_AFTER_SECONDS + 1)
    lab.services.invoices.settle(payment_hash)  # a redelivery after the settlement's visibility timeout
    assert lab.sqs.approximate_counts("WorkQueue") == (2, 0)
    lab.run_work()
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete" and done["charged_sats"] + done["refundable_sats"] == created.json["invoice"]["amount_sats"]


@pytest.fixture
def lnurl(lab: Lab) -> Iterator[FakeLnurlServer]:
    server = FakeLnurlServer()
    # Tests only: Lightning addresses at 127.0.0.1:PORT over http (LNURL_ALLOW_LOCAL).
    lab.services.settings = lab.services.settings.model_copy(update={"lnurl_allow_local": True})
    try:
        yield server
    finally:
        server.close()


def test_a_refund_address_is_paid_automatically_when_the_job_settles(lab: Lab, lnurl: FakeLnurlServer) -> None:
    created = lab.api.post("/api/jobs", json_body={**BODY, "refund_address": lnurl.address("alice")})
    assert created.status == 201, created.body
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete" and done["refund_status"] == "paid" and done["refundable_sats"] == 0
    assert done["receipt"]["refunded_sats"] == done["receipt"]["paid_sats"] - done["charged_sats"] > 0
    assert len(lab.node.listing()["payouts"]) == 1


def test_an_unreachable_refund_address_leaves_the_refund_claimable(lab: Lab, lnurl: FakeLnurlServer) -> None:
    lnurl.mode = "server_error"
    created = lab.api.post("/api/jobs", json_body={**BODY, "refund_address": lnurl.address("bob")})
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    done = job(lab, created.json["job_id"])
    assert done["status"] == "complete" and done["refund_status"] == "claimable" and done["refundable_sats"] > 0
    wallet = lab.node.wallet_invoice(done["refundable_sats"])
    claimed = lab.api.post(f"/api/jobs/{done['job_id']}/refund", json_body={"invoice": wallet.bolt11})
    assert claimed.status == 200 and claimed.json["payout"]["status"] == "paid"


def test_with_an_eval_fee_a_gate_job_pays_the_fee_first_then_the_work(lab: Lab) -> None:
    lab.services.settings = lab.services.settings.model_copy(update={"eval_fee_sats": 3})
    created = lab.api.post("/api/jobs", json_body=BODY)
    assert created.status == 201 and created.json["status"] == "awaiting_eval_payment", created.body
    assert created.json["invoice"]["amount_sats"] == 3
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    waiting = lab.services.jobs.require(created.json["job_id"])
    assert waiting.status.value == "awaiting_payment" and waiting.invoice_hash
    shown = job(lab, created.json["job_id"])["invoice"]  # the work's invoice, on the job once the fee is paid
    assert (shown["payment_hash"], shown["amount_sats"]) == (waiting.invoice_hash, created.json["receipt"]["quoted_sats"])
    lab.services.invoices.settle(created.json["invoice"]["payment_hash"])  # the fee's notification again: nothing starts
    lab.run_work()
    assert job(lab, created.json["job_id"])["status"] == "awaiting_payment"
    lab.pay_and_settle(waiting.invoice_hash)
    done = job(lab, created.json["job_id"])
    receipt = done["receipt"]
    assert "invoice" not in done  # paid: no invoice awaited
    assert done["status"] == "complete" and receipt["eval_fee_sats"] == 3
    assert receipt["paid_sats"] == 3 + receipt["quoted_sats"] == 3 + done["charged_sats"] + done["refundable_sats"]


def test_a_refund_paid_between_the_views_reads_is_never_shown_paid_beside_the_sats_it_paid(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET /api/jobs/{id} reads the escrow and the refund's payout apart: a refund that completes
    between the two reads (an automatic refund racing a poll) must not read 'paid' with the sats
    still refundable (seen on a fresh clone: refund_status paid, refundable_sats 93)."""
    created = lab.api.post("/api/jobs", json_body=BODY)
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    job_id = created.json["job_id"]
    refundable = job(lab, job_id)["refundable_sats"]
    jobs = lab.services.jobs
    read_escrow = jobs.refundable_sats
    wallet = lab.node.wallet_invoice(refundable)

    def escrow_then_refund(done: Any) -> int:  # the refund lands just after the escrow is read
        sats = read_escrow(done)
        monkeypatch.setattr(jobs, "refundable_sats", read_escrow)
        jobs.refund(job_id, wallet.bolt11)
        return sats

    monkeypatch.setattr(jobs, "refundable_sats", escrow_then_refund)
    torn = job(lab, job_id)
    assert (torn["refund_status"], torn["refundable_sats"]) in {("claimable", refundable), ("paid", 0)}, torn
    after = job(lab, job_id)
    assert (after["refund_status"], after["refundable_sats"], after["receipt"]["refunded_sats"]) == ("paid", 0, refundable)
