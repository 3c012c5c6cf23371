"""Sessions (issue 13): a prepaid balance, requests held on it, top-ups, close — and the peers'
money-losing bugs as regression tests. The ledger audit runs after each test (`table_name`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes.lnurl_server import FakeLnurlServer
from tests.integration.payments.conftest import Lab
from timmy.errors import Conflict, PaymentRequired
from timmy.identity.signer import Keys
from timmy.ledger.model import POOL, TransferCode, session_account
from timmy.ports.executor import ExecutionFailed, ExecutionResult
from timmy.pricing.service import TokenUsage

MODEL = "claude-sonnet-4-5"
WORK = {"request": "Write a haiku about the sea", "model": MODEL, "max_output_tokens": 4000}


def open_session(lab: Lab, amount: int, headers: dict[str, str] | None = None, **extra: Any) -> tuple[str, dict[str, str]]:
    created = lab.api.post("/api/sessions", json_body={"amount_sats": amount, **extra}, headers=headers)
    assert created.status == 201, created.body
    assert created.json["status"] == "awaiting_payment" and created.json["session_token"].startswith("st_")
    lab.pay_and_settle(created.json["invoice"]["payment_hash"])
    return created.json["session_id"], {"x-session-token": created.json["session_token"]}


def status(lab: Lab, session_id: str, token: dict[str, str]) -> dict[str, Any]:
    answer = lab.api.get(f"/api/sessions/{session_id}", headers=token)
    assert answer.status == 200, answer.body
    return dict(answer.json)


def estimate(lab: Lab) -> int:
    return int(lab.api.post("/api/estimate", json_body=WORK).json["estimated_sats"])


def test_a_paid_session_runs_requests_charged_their_actual_cost(lab: Lab) -> None:
    session_id, token = open_session(lab, 1_000)
    assert status(lab, session_id, token)["status"] == "active" and status(lab, session_id, token)["balance_sats"] == 1_000
    pool = lab.pool_sats()
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert answer.status == 200, answer.body
    charged = answer.json["charged_sats"]
    assert answer.json["result"] and 0 < charged <= estimate(lab) and answer.json["absorbed_sats"] == 0
    assert answer.json["balance_sats"] == 1_000 - charged
    after = status(lab, session_id, token)
    assert after["held_sats"] == 0 and after["totals"]["charged_sats"] == charged and after["totals"]["requests"] == 1
    assert lab.pool_sats() == pool + charged * lab.services.settings.pool_credit_pct // 100
    # An anonymous session is gated without reading the pool: the token, the hold, the charge, the
    # balance — 4 DynamoDB calls.
    usage = lab.services.store.usage  # type: ignore[attr-defined]
    before = usage.snapshot()[0]
    assert lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token).status == 200
    assert usage.snapshot()[0] - before == 4


def test_tokens_are_checked_and_reveal_nothing(lab: Lab) -> None:
    first, token = open_session(lab, 100)
    second, other = open_session(lab, 100)
    for headers in ({}, {"x-session-token": "st_" + "0" * 64}, other, {"authorization": "Bearer nt1.garbage"}):
        answer = lab.api.get(f"/api/sessions/{first}", headers=headers)
        assert (answer.status, answer.error_code) == (401, "invalid_session_token")
    assert lab.api.get("/api/sessions/" + "0" * 32, headers=token).status == 401  # unknown: the same answer
    assert lab.api.post(f"/api/sessions/{first}/request", json_body=WORK, headers=other).status == 401  # Aperture 625382f
    assert status(lab, second, other)["balance_sats"] == 100 and status(lab, first, token)["balance_sats"] == 100
    assert lab.api.get(f"/api/sessions/{first}", headers={"authorization": token["x-session-token"].join(["Bearer ", ""])}).status == 200


def test_a_request_the_balance_cannot_hold_is_a_402_carrying_the_invoice_of_the_shortfall(lab: Lab) -> None:
    session_id, token = open_session(lab, 10)
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (answer.status, answer.error_code) == (402, "insufficient_balance")
    error = answer.json["error"]
    assert error["shortfall_sats"] == estimate(lab) - 10
    assert error["invoice"]["amount_sats"] == error["shortfall_sats"] and error["invoice"]["bolt11"].startswith("lnbcrt")
    assert status(lab, session_id, token)["balance_sats"] == 10  # refused: nothing held, nothing charged
    lab.pay_and_settle(error["invoice"]["payment_hash"])  # the 402's invoice tops the balance up
    assert status(lab, session_id, token)["balance_sats"] == estimate(lab)
    again = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert again.status == 200, again.body
    assert status(lab, session_id, token)["totals"]["topped_up_sats"] == estimate(lab)


class Slow:
    def __init__(self, seconds: float):
        self.seconds = seconds

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        time.sleep(self.seconds)
        return ExecutionResult("an answer", TokenUsage(50, 400))


def test_32_parallel_requests_on_a_balance_of_10_estimates_run_at_most_10(lab: Lab) -> None:
    per_request = estimate(lab)
    session_id, token = open_session(lab, per_request * 10)
    lab.services.__dict__["executor"] = Slow(1.0)  # every request holds its estimate at once
    sessions = lab.services.sessions
    session = sessions.authorize(session_id, token["x-session-token"])
    barrier = threading.Barrier(32)
    outcomes: list[Any] = []

    def one() -> None:
        barrier.wait()
        try:
            outcomes.append(sessions.request(session, WORK["request"], MODEL, 4000))
        except PaymentRequired as refused:
            outcomes.append(refused)

    threads = [threading.Thread(target=one) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ran = [o for o in outcomes if not isinstance(o, PaymentRequired)]
    assert len(ran) == 10 and len(outcomes) == 32
    account = lab.services.ledger.account(session_account(session_id))
    assert account.debits_pending == 0 and account.posted_balance_sats >= 0
    assert sum(o.charged_sats for o in ran) == per_request * 10 - account.posted_balance_sats  # what was booked


def race_free_requests(lab: Lab, tier: str, sessions_count: int, threads_per_session: int) -> tuple[str, list[Any]]:
    """`sessions_count` sessions bound to one identity of `tier`, each running `threads_per_session`
    requests at once (slow work, so the holds overlap): every request's outcome, or its refusal."""
    keys = Keys.generate()
    bearer = lab.bearer(keys.pubkey, tier)
    sessions = lab.services.sessions
    opened = [open_session(lab, estimate(lab) * threads_per_session, headers=bearer) for _ in range(sessions_count)]
    lab.services.__dict__["executor"] = Slow(0.3)
    barrier = threading.Barrier(sessions_count * threads_per_session)
    outcomes: list[Any] = []

    def one(session_id: str, token: str) -> None:
        session = sessions.authorize(session_id, token)
        barrier.wait()
        try:
            outcomes.append(sessions.request(session, WORK["request"], MODEL, 4000))
        except PaymentRequired as refused:
            outcomes.append(refused)

    threads = [
        threading.Thread(target=one, args=(sid, token["x-session-token"])) for sid, token in opened for _ in range(threads_per_session)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for session_id, _ in opened:
        assert lab.services.ledger.account(session_account(session_id)).debits_pending == 0  # every hold resolved
    return keys.pubkey, outcomes


def assert_every_absorbed_sat_granted_once(lab: Lab, pubkey: str, tier: str, outcomes: list[Any]) -> None:
    free_tier = lab.services.free_tier
    usage = free_tier.usage_today(pubkey, tier)  # type: ignore[arg-type]
    absorbed = sum(o.absorbed_sats for o in outcomes)
    assert usage.reserved_sats == 0 and usage.absorbed_sats == absorbed <= usage.budget_sats
    grants = free_tier.grants(None)["grants"]
    assert sorted(g["absorbed_sats"] for g in grants) == sorted(o.absorbed_sats for o in outcomes if o.absorbed_sats)
    assert len({g["transfer_id"] for g in grants}) == len(grants)  # no request granted twice
    pool = free_tier.pool_status()
    assert pool.reserved_sats == 0 and pool.balance_sats >= 0


def test_free_requests_racing_on_two_sessions_of_one_identity_stay_within_its_budget(lab: Lab) -> None:
    """The reservation rides in the request's own start transaction: its conditions (pool, budget)
    still decide under a race. 24 requests on two sessions of one elite identity (1,000 sats a
    day): the free ones fit the budget, the rest fall back to partial or gate on a fresh read."""
    per_request = estimate(lab)
    assert 2 <= 1_000 // per_request < 24  # the budget is what the requests fight over
    lab.pool_sats()  # seeded (10,000 sats): not the limit here
    pubkey, outcomes = race_free_requests(lab, "elite", 2, 12)
    ran = [o for o in outcomes if not isinstance(o, PaymentRequired)]
    assert len(ran) == 24
    actual = lab.services.pricing.actual_charge_sats(
        TokenUsage(50, 400), MODEL, lab.services.evaluator.evaluate(WORK["request"], MODEL, 4000).estimate
    )
    assert all(o.charged_sats + o.absorbed_sats == actual for o in ran)
    served = [o.free_tier["serve"] for o in ran]
    assert "free" in served and set(served) - {"free"}  # some free, the rest not (the budget ran out)
    assert_every_absorbed_sat_granted_once(lab, pubkey, "elite", ran)


def test_free_requests_racing_for_a_nearly_empty_pool_never_overdraw_it(lab: Lab) -> None:
    per_request = estimate(lab)
    ledger = lab.services.ledger
    lab.pool_sats()
    left = per_request * 2 + per_request // 2  # room for two free requests, not three
    ledger.create_transfer("drain", POOL, "operator-equity", ledger.account(POOL).computed_available_sats - left, "test_drain")
    pubkey, outcomes = race_free_requests(lab, "elite", 2, 8)
    ran = [o for o in outcomes if not isinstance(o, PaymentRequired)]
    assert len(ran) == 16
    # Reserved at the estimate: at most two are free at once (one that settled gives back the unused
    # part of its hold, and paid requests credit their share, which later requests may take).
    assert sum(o.free_tier["serve"] == "free" for o in ran) >= 1
    credited = sum(o.charged_sats * lab.services.settings.pool_credit_pct // 100 for o in ran)
    assert ledger.account(POOL).posted_balance_sats == left - sum(o.absorbed_sats for o in ran) + credited >= 0
    assert_every_absorbed_sat_granted_once(lab, pubkey, "elite", ran)


def test_work_that_fails_or_comes_back_empty_is_never_charged(lab: Lab) -> None:
    session_id, token = open_session(lab, 500)

    class Failing:
        def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
            raise ExecutionFailed("refused")

    lab.services.__dict__["executor"] = Failing()
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (answer.status, answer.error_code) == (503, "work_failed")
    lab.services.__dict__["executor"] = type("Empty", (), {"run": lambda self, *a: ExecutionResult(" ", TokenUsage(5, 5))})()
    assert lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token).error_code == "work_failed"
    after = status(lab, session_id, token)
    assert after["balance_sats"] == 500 and after["held_sats"] == 0 and after["totals"]["charged_sats"] == 0


def test_a_free_request_of_a_bound_identity_is_paid_by_the_pool(lab: Lab) -> None:
    keys = Keys.generate()
    bearer = lab.bearer(keys.pubkey, "elite")
    session_id, token = open_session(lab, 100, headers=bearer)
    assert status(lab, session_id, token)["pubkey"] == keys.pubkey
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert answer.status == 200, answer.body
    assert answer.json["charged_sats"] == 0 and answer.json["absorbed_sats"] > 0 and answer.json["balance_sats"] == 100
    assert answer.json["free_tier"]["serve"] == "free"
    # Warm: the token; the identity and the balance (one read: a free request posts nothing on the
    # balance); ONE transaction for the reservation and the active check; ONE for the grant (settled
    # from the reservation taken, unread) and the totals: 4 calls.
    usage = lab.services.store.usage  # type: ignore[attr-defined]
    before = usage.snapshot()[0]
    again = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert again.status == 200 and again.json["charged_sats"] == 0 and usage.snapshot()[0] - before == 4


def test_a_partial_request_with_the_pool_drained_during_the_work_is_charged_in_full_from_the_hold(lab: Lab) -> None:
    keys = Keys.generate()
    bearer = lab.bearer(keys.pubkey, "trusted")
    big = {**WORK, "max_output_tokens": 64000}
    session_id, token = open_session(lab, 5_000, headers=bearer)
    ledger = lab.services.ledger

    class Draining:
        def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
            ledger.create_transfer("drain-during-work", POOL, "operator-equity", ledger.account(POOL).computed_available_sats, "test_drain")
            return ExecutionResult("an answer", TokenUsage(50, 3000))

    lab.services.__dict__["executor"] = Draining()
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=big, headers=token)
    assert answer.status == 200, answer.body
    assert answer.json["free_tier"]["serve"] == "partial" and answer.json["absorbed_sats"] == 0
    held = lab.services.evaluator.evaluate(big["request"], MODEL, 64000).estimate
    actual = lab.services.pricing.actual_charge_sats(TokenUsage(50, 3000), MODEL, held)
    assert answer.json["charged_sats"] == actual <= held.sats  # the full actual cost, from the hold
    assert answer.json["balance_sats"] == 5_000 - actual and status(lab, session_id, token)["held_sats"] == 0
    assert lab.pool_sats() == actual * lab.services.settings.pool_credit_pct // 100  # drained, then credited its share
    audit = lab.api.get("/api/admin/audit", headers={"authorization": "Bearer test-admin-key"})
    assert audit.status == 200 and audit.json["ok"], audit.body  # nothing lost: the audit agrees


def test_a_partial_request_is_absorbed_up_to_its_share_after_the_work_and_the_rest_charged(lab: Lab) -> None:
    keys = Keys.generate()
    bearer = lab.bearer(keys.pubkey, "trusted")
    big = {**WORK, "max_output_tokens": 64000}
    session_id, token = open_session(lab, 5_000, headers=bearer)
    lab.services.__dict__["executor"] = type("Long", (), {"run": lambda self, *a: ExecutionResult("an answer", TokenUsage(50, 30000))})()
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=big, headers=token)
    assert answer.status == 200, answer.body
    decision = answer.json["free_tier"]
    held = lab.services.evaluator.evaluate(big["request"], MODEL, 64000).estimate
    actual = lab.services.pricing.actual_charge_sats(TokenUsage(50, 30000), MODEL, held)
    assert decision["serve"] == "partial" and answer.json["absorbed_sats"] == min(actual, decision["absorb_sats"]) > 0
    assert answer.json["charged_sats"] == actual - answer.json["absorbed_sats"] > 0
    assert answer.json["balance_sats"] == 5_000 - answer.json["charged_sats"]


def test_close_pays_the_balance_once_and_refuses_requests_after(lab: Lab) -> None:
    session_id, token = open_session(lab, 300)
    spent = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token).json["charged_sats"]
    wallet = lab.node.wallet_invoice(300 - spent)
    first = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": wallet.bolt11}, headers=token)
    assert first.status == 200, first.body
    assert first.json["status"] == "closed" and first.json["payout"]["status"] == "paid" and first.json["balance_sats"] == 0
    again = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": wallet.bolt11}, headers=token)
    assert again.status == 200 and again.json["payout"] == first.json["payout"]  # nothing left: the first payout (Routstr #394, #412)
    assert status(lab, session_id, token)["payout"] == first.json["payout"]  # the view shows it too
    assert [p["payment_hash"] for p in lab.node.listing()["payouts"]] == [wallet.payment_hash]
    late = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (late.status, late.error_code) == (409, "session_not_active")
    totals = status(lab, session_id, token)["totals"]
    assert totals["charged_sats"] + totals["refunded_sats"] == totals["topped_up_sats"] == 300


def test_a_close_refused_for_its_invoice_leaves_the_session_active(lab: Lab) -> None:
    """Bad input leaves no partial state: a close without an invoice, with a malformed one, one for
    another amount or one about to expire is a 400 and the session still takes requests."""
    session_id, token = open_session(lab, 300)
    refusals = [
        ({}, "invoice_required"),
        ({"invoice": "lnbc1garbage"}, "invalid_invoice"),
        ({"invoice": lab.node.wallet_invoice(299).bolt11}, "invoice_amount_mismatch"),
        ({"invoice": lab.node.wallet_invoice(300, expiry_seconds=30).bolt11}, "invoice_expired"),
    ]
    for body, code in refusals:
        refused = lab.api.post(f"/api/sessions/{session_id}/close", json_body=body, headers=token)
        assert (refused.status, refused.error_code) == (400, code), refused.body
        assert status(lab, session_id, token)["status"] == "active"
    assert lab.node.listing()["payouts"] == []
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert answer.status == 200, answer.body
    left = answer.json["balance_sats"]
    closed = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(left).bolt11}, headers=token)
    assert closed.status == 200 and closed.json["status"] == "closed" and closed.json["payout"]["amount_sats"] == left


def test_a_top_up_paid_after_the_close_stays_the_users_and_is_paid_by_the_next_close(lab: Lab) -> None:
    session_id, token = open_session(lab, 100)
    topup = lab.api.post(f"/api/sessions/{session_id}/topup", json_body={"amount_sats": 40}, headers=token)
    assert topup.status == 201
    lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(100).bolt11}, headers=token)
    lab.pay_and_settle(topup.json["invoice"]["payment_hash"])  # Routstr #462: the race that lost funds
    assert status(lab, session_id, token)["balance_sats"] == 40
    closed = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(40).bolt11}, headers=token)
    assert closed.json["payout"]["status"] == "paid" and closed.json["balance_sats"] == 0


def test_one_top_up_is_credited_once_to_one_session(lab: Lab) -> None:
    session_id, token = open_session(lab, 100)
    other_id, other = open_session(lab, 100)
    topup = lab.api.post(f"/api/sessions/{session_id}/topup", json_body={"amount_sats": 25}, headers=token)
    h = topup.json["invoice"]["payment_hash"]
    lab.node.settle(h)
    for notification in lab.sent * 2:  # delivered twice (Aperture e015dd0)
        lab.deliver(notification)
    lab.settle_queue()
    assert lab.services.invoices.settle(h, owner=f"session:{other_id}").value == "unknown"
    assert status(lab, session_id, token)["balance_sats"] == 125 and status(lab, other_id, other)["balance_sats"] == 100


def test_a_stale_hold_of_a_dead_request_does_not_block_the_close(lab: Lab) -> None:
    session_id, token = open_session(lab, 200)
    batch = lab.services.ledger.batch()  # a request whose process died after taking its hold
    batch.reserve(
        f"session-hold:{session_id}:dead", session_account(session_id), "operator-revenue", 94, TransferCode.CHARGE, lab.clock.now() + 300
    )
    lab.services.ledger.commit(batch)
    lab.services.__dict__["sessions"]._sleep = lambda s: lab.clock.advance(s)  # type: ignore[attr-defined]
    busy = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(200).bolt11}, headers=token)
    assert (busy.status, busy.error_code) == (409, "requests_in_flight")  # a live hold is waited for, within a bound
    lab.clock.advance(lab.services.settings.session_hold_ttl_seconds)
    closed = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(200).bolt11}, headers=token)
    assert closed.status == 200 and closed.json["payout"]["status"] == "paid"  # Routstr #551


@pytest.fixture
def lnurl(lab: Lab) -> Iterator[FakeLnurlServer]:
    server = FakeLnurlServer()
    # Tests only: Lightning addresses at 127.0.0.1:PORT over http (LNURL_ALLOW_LOCAL).
    lab.services.settings = lab.services.settings.model_copy(update={"lnurl_allow_local": True})
    try:
        yield server
    finally:
        server.close()


def test_an_idle_session_with_a_refund_address_is_closed_and_refunded_by_the_sweeper(lab: Lab, lnurl: FakeLnurlServer) -> None:
    session_id, token = open_session(lab, 150, refund_address=lnurl.address("carol"))
    sessions = lab.services.sessions
    assert sessions.sweep_idle() == 0
    # The fake's invoices are dated by the wall clock: idle for 2 s here rather than an hour.
    sessions.settings = sessions.settings.model_copy(update={"session_idle_seconds": 2})
    lab.clock.advance(3)
    assert lab.services.sessions.sweep_idle() == 1
    after = status(lab, session_id, token)
    assert after["status"] == "closed" and after["balance_sats"] == 0 and after["totals"]["refunded_sats"] == 150


def test_a_close_without_a_body_pays_the_refund_address_or_asks_for_an_invoice(lab: Lab, lnurl: FakeLnurlServer) -> None:
    """Contract: close takes `{invoice}`, "or none, when the session has a refund_address": a bare
    POST (no body at all) closes such a session and pays its balance there; without an address it
    is a 400 naming the invoice, and the session stays active."""
    with_address, token = open_session(lab, 120, refund_address=lnurl.address("dave"))
    closed = lab.api.post(f"/api/sessions/{with_address}/close", headers=token)
    assert closed.status == 200, closed.body
    assert closed.json["status"] == "closed" and closed.json["payout"]["amount_sats"] == 120 and closed.json["balance_sats"] == 0
    without, other = open_session(lab, 60)
    refused = lab.api.post(f"/api/sessions/{without}/close", headers=other)
    assert (refused.status, refused.error_code) == (400, "invoice_required")
    assert status(lab, without, other)["status"] == "active"


def test_an_idle_session_without_a_refund_address_keeps_its_balance_claimable(lab: Lab) -> None:
    session_id, token = open_session(lab, 80)
    sessions = lab.services.sessions
    sessions.settings = sessions.settings.model_copy(update={"session_idle_seconds": 2})
    lab.clock.advance(3)
    assert sessions.sweep_idle() == 0
    assert status(lab, session_id, token)["status"] == "active" and status(lab, session_id, token)["balance_sats"] == 80
    closed = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(80).bolt11}, headers=token)
    assert closed.status == 200 and closed.json["payout"]["status"] == "paid"


def test_a_request_whose_work_dies_unexpectedly_leaves_no_hold(lab: Lab) -> None:
    """Not an executor error (a bug, the client gone, the runtime's timeout signal): the hold is
    voided on the way out, nothing charged, and the error is not swallowed."""
    session_id, token = open_session(lab, 500)

    class Dies:
        def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
            raise TimeoutError("the runtime gave up")

    lab.services.__dict__["executor"] = Dies()
    sessions = lab.services.sessions
    with pytest.raises(TimeoutError):
        sessions.request(sessions.authorize(session_id, token["x-session-token"]), WORK["request"], MODEL, 4000)
    after = status(lab, session_id, token)
    assert after["held_sats"] == 0 and after["balance_sats"] == 500 and after["totals"]["charged_sats"] == 0


class Recording:
    """Work that takes `seconds` and records when it started and ended (monotonic)."""

    def __init__(self, seconds: float, usage: TokenUsage = TokenUsage(50, 400)):
        self.seconds, self.usage = seconds, usage
        self.spans: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        started = time.monotonic()
        time.sleep(self.seconds)
        with self.lock:
            self.spans.append((started, time.monotonic()))
        return ExecutionResult("an answer", self.usage)


def real_waits(lab: Lab) -> None:
    """The close's bounded wait on the lab's fixed clock: each poll sleeps and moves the clock."""

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        lab.clock.advance(seconds)

    lab.services.sessions._sleep = sleep


def test_close_called_twice_concurrently_with_requests_and_a_top_up_pays_once(lab: Lab, lnurl: FakeLnurlServer) -> None:
    """Routstr #394/#412/#462: two closes race six request loops and a top-up's payment. The balance
    is paid out once; no work starts after a close returned, all paid work ended before it; every
    request after the close is refused; charged + refunded + balance = paid in (ledger and totals)."""
    session_id, token = open_session(lab, 3_000, refund_address=lnurl.address("dave"))
    topup = lab.api.post(f"/api/sessions/{session_id}/topup", json_body={"amount_sats": 70}, headers=token).json["invoice"]
    sessions = lab.services.sessions
    real_waits(lab)
    work = Recording(0.15)
    lab.services.__dict__["executor"] = work
    session = sessions.authorize(session_id, token["x-session-token"])  # read while active: its status says so
    charged: list[int] = []
    refused: list[tuple[float, str]] = []
    closes: list[tuple[float, Any]] = []
    started = threading.Event()
    lock = threading.Lock()

    def requests() -> None:
        while True:
            try:
                outcome = sessions.request(session, WORK["request"], MODEL, 4000)
            except (Conflict, PaymentRequired) as error:
                with lock:
                    refused.append((time.monotonic(), error.code))
                return
            with lock:
                charged.append(outcome.charged_sats)
            started.set()

    def close() -> None:
        try:
            view, payout = sessions.close(sessions.authorize(session_id, token["x-session-token"]), None)
            answer: Any = (view["status"], payout.amount_sats if payout else 0)
        except Conflict as busy:  # not expected: a twin's payout in flight is answered, not waited for
            answer = busy.code
        with lock:
            closes.append((time.monotonic(), answer))

    def pay_topup() -> None:
        lab.node.settle(topup["payment_hash"], notify=False)
        lab.services.invoices.settle(topup["payment_hash"])

    loops = [threading.Thread(target=requests) for _ in range(6)]
    for thread in loops:
        thread.start()
    assert started.wait(10)
    racers = [threading.Thread(target=close), threading.Thread(target=close), threading.Thread(target=pay_topup)]
    for thread in racers:
        thread.start()
    for thread in loops + racers:
        thread.join(30)
    assert not any(thread.is_alive() for thread in loops + racers)

    assert len(closes) == 2 and all(isinstance(answer, tuple) for _, answer in closes), closes  # both answered a payout
    first_closed = min(at for at, answer in closes if isinstance(answer, tuple))
    assert all(end <= first_closed for _, end in work.spans), "paid work ran after the close"
    assert len(work.spans) == len(charged) and all(code == "session_not_active" for _, code in refused) and len(refused) == 6
    late = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (late.status, late.error_code) == (409, "session_not_active")

    # The top-up may have landed after the payout: it stays the user's, and a later close pays it.
    final = lab.api.post(f"/api/sessions/{session_id}/close", json_body={}, headers=token)
    assert final.status == 200 and final.json["balance_sats"] == 0, final.body
    again = lab.api.post(f"/api/sessions/{session_id}/close", json_body={}, headers=token)
    assert again.status == 200 and again.json["payout"] == final.json["payout"] and again.json["balance_sats"] == 0
    payouts = lab.node.listing()["payouts"]
    assert len({p["payment_hash"] for p in payouts}) == len(payouts)  # no invoice paid twice
    refunded = sum(p["amount_sats"] for p in payouts)
    account = lab.services.ledger.account(session_account(session_id))
    assert account.credits_posted == 3_070 == sum(charged) + refunded + account.posted_balance_sats
    totals = status(lab, session_id, token)["totals"]
    assert (totals["charged_sats"], totals["refunded_sats"], totals["topped_up_sats"]) == (sum(charged), refunded, 3_070)


def test_a_close_waits_for_a_live_request_within_its_bound_and_refuses_new_ones_meanwhile(lab: Lab) -> None:
    session_id, token = open_session(lab, 500)
    sessions = lab.services.sessions
    sessions.settings = sessions.settings.model_copy(update={"session_close_wait_seconds": 0.3})
    real_waits(lab)
    work = Recording(3.0)  # far longer than the close's bound, so the bound answers even on a loaded machine
    lab.services.__dict__["executor"] = work
    session = sessions.authorize(session_id, token["x-session-token"])
    outcomes: list[Any] = []
    live = threading.Thread(target=lambda: outcomes.append(sessions.request(session, WORK["request"], MODEL, 4000)))
    live.start()
    while not lab.services.ledger.account(session_account(session_id)).debits_pending:
        time.sleep(0.02)
    invoice = lab.node.wallet_invoice(500).bolt11
    asked = time.monotonic()
    busy = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": invoice}, headers=token)
    assert (busy.status, busy.error_code) == (409, "requests_in_flight") and time.monotonic() - asked < 2.5  # bounded, not the work's 3 s
    refused = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (refused.status, refused.error_code) == (409, "session_not_active")  # closing: no new hold
    live.join(10)
    (outcome,) = outcomes  # the live request finished and was charged as usual
    assert outcome.charged_sats > 0 and outcome.balance_sats == 500 - outcome.charged_sats
    closed = lab.api.post(
        f"/api/sessions/{session_id}/close", json_body={"invoice": lab.node.wallet_invoice(outcome.balance_sats).bolt11}, headers=token
    )
    assert closed.status == 200 and closed.json["payout"]["amount_sats"] == outcome.balance_sats and closed.json["status"] == "closed"


def test_two_closes_with_one_invoice_pay_and_count_the_refund_once(lab: Lab) -> None:
    """A client retrying a close (same invoice) while the first is still running: both see the same
    balance, the second finds the first's payout already paid. One payment, one refund in the totals."""
    session_id, token = open_session(lab, 200)
    sessions = lab.services.sessions
    payouts = sessions._payouts
    both_decided = threading.Barrier(2)
    first_paid = threading.Event()
    calls: list[int] = []
    lock = threading.Lock()

    class Twins:  # the real payouts, with the two closes' timing pinned
        def check_invoice(self, bolt11: object, amount_sats: int) -> Any:
            both_decided.wait(10)  # both closes computed the balance before either paid
            return payouts().check_invoice(bolt11, amount_sats)

        def pay(self, *args: Any, **kwargs: Any) -> Any:
            with lock:
                calls.append(len(calls) + 1)
                mine = calls[-1]
            if mine == 2:
                first_paid.wait(10)  # the second arrives once the first has paid
            try:
                return payouts().pay(*args, **kwargs)
            finally:
                first_paid.set()

    sessions._payouts = lambda: Twins()
    invoice = lab.node.wallet_invoice(200)
    answers: list[Any] = []
    session = sessions.authorize(session_id, token["x-session-token"])
    racers = [threading.Thread(target=lambda: answers.append(sessions.close(session, invoice.bolt11))) for _ in range(2)]
    for thread in racers:
        thread.start()
    for thread in racers:
        thread.join(20)
    assert [payout.status.value for _, payout in answers] == ["succeeded", "succeeded"]  # the same payout, answered twice
    assert [p["payment_hash"] for p in lab.node.listing()["payouts"]] == [invoice.payment_hash]
    after = status(lab, session_id, token)
    assert after["balance_sats"] == 0 and after["totals"]["refunded_sats"] == 200


def test_an_overrun_is_charged_its_own_estimate_and_never_spends_the_other_requests_holds(lab: Lab) -> None:
    """Routstr #366, #520, PR #682: three requests hold the whole balance at once; one comes back far
    over its estimate. It is charged its estimate (its hold), the other two are charged their own
    cost from their own holds, and the balance never goes below 0."""
    per_request = estimate(lab)
    session_id, token = open_session(lab, per_request * 3)
    all_held = threading.Barrier(3)
    normal = TokenUsage(50, 400)

    class OneOverruns:
        def __init__(self) -> None:
            self.calls = 0
            self.lock = threading.Lock()

        def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
            with self.lock:
                self.calls += 1
                first = self.calls == 1
            all_held.wait(10)  # the three holds are on the balance together
            return ExecutionResult("an answer", TokenUsage(1_000_000, 1_000_000) if first else normal)

    lab.services.__dict__["executor"] = OneOverruns()
    sessions = lab.services.sessions
    session = sessions.authorize(session_id, token["x-session-token"])
    outcomes: list[Any] = []
    threads = [threading.Thread(target=lambda: outcomes.append(sessions.request(session, WORK["request"], MODEL, 4000))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    evaluation = lab.services.evaluator.evaluate(WORK["request"], MODEL, 4000).estimate
    normal_cost = lab.services.pricing.actual_charge_sats(normal, MODEL, evaluation)
    assert sorted(o.charged_sats for o in outcomes) == [normal_cost, normal_cost, per_request]
    account = lab.services.ledger.account(session_account(session_id))
    assert account.debits_pending == 0 and account.posted_balance_sats == per_request * 2 - normal_cost * 2 >= 0


def test_estimates_are_upper_bounds_charged_never_above_held(lab: Lab) -> None:
    """Over many requests (sizes, models, output caps, usage up to 3x the estimate's tokens): each
    charge is at most its hold (the estimate), at least 1 sat, and exactly what left the balance."""
    session_id, token = open_session(lab, 500_000)
    sessions, ledger = lab.services.sessions, lab.services.ledger
    session = sessions.authorize(session_id, token["x-session-token"])

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        words=st.integers(1, 300),
        model=st.sampled_from([MODEL, "gpt-4o-mini"]),
        max_output_tokens=st.integers(1, 8000),
        input_factor=st.floats(0, 3),
        output_factor=st.floats(0, 3),
    )
    def one(words: int, model: str, max_output_tokens: int, input_factor: float, output_factor: float) -> None:
        request = " ".join(["sea"] * words)
        held = lab.services.evaluator.evaluate(request, model, max_output_tokens).estimate
        usage = TokenUsage(int(held.input_tokens * input_factor), int(held.output_tokens * output_factor))
        lab.services.__dict__["executor"] = type("Fixed", (), {"run": lambda self, *a: ExecutionResult("an answer", usage)})()
        before = ledger.account(session_account(session_id)).posted_balance_sats
        outcome = sessions.request(session, request, model, max_output_tokens)
        after = ledger.account(session_account(session_id))
        assert 1 <= outcome.charged_sats <= held.sats
        assert before - after.posted_balance_sats == outcome.charged_sats and after.debits_pending == 0

    one()


def test_a_close_whose_payout_is_in_flight_counts_the_refund_when_it_lands(lab: Lab) -> None:
    """The node has not said yet: the session is closed, its balance held by the payout (never
    paid again); once the payout sweeper records it paid, the totals show it refunded."""
    session_id, token = open_session(lab, 120)
    wallet = lab.node.wallet_invoice(120, behaviour="in_flight")
    closed = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": wallet.bolt11}, headers=token)
    assert closed.status == 200 and closed.json["status"] == "closed" and closed.json["payout"]["status"] == "pending", closed.body
    assert (closed.json["held_sats"], closed.json["totals"]["refunded_sats"]) == (120, 0)
    lab.node.resolve_payment(wallet.payment_hash, True)
    lab.services.payouts.sweep()
    after = status(lab, session_id, token)
    assert (after["balance_sats"], after["held_sats"], after["totals"]["refunded_sats"]) == (0, 0, 120)


def no_waits(lab: Lab) -> list[float]:
    """The close's polls, recorded (each moves the lab's clock): a close that answers at once makes none."""
    polls: list[float] = []

    def sleep(seconds: float) -> None:
        polls.append(seconds)
        lab.clock.advance(seconds)

    lab.services.sessions._sleep = sleep
    return polls


def close(lab: Lab, session_id: str, token: dict[str, str], body: dict[str, Any]) -> tuple[Any, float]:
    asked = time.monotonic()
    answer = lab.api.post(f"/api/sessions/{session_id}/close", json_body=body, headers=token)
    return answer, time.monotonic() - asked


def test_a_close_retried_while_the_payout_is_in_flight_answers_that_payout_at_once(lab: Lab) -> None:
    """A payout in flight holds the balance, but it is not a request to wait for: a retry (the same
    invoice, another one, or none) answers the first close's payout, pending, at once — not 409
    `requests_in_flight` after the close's bound — and pays nothing. Once the sweeper records the
    payout paid, the view and every close show it paid, and the totals count it once."""
    session_id, token = open_session(lab, 120)
    polls = no_waits(lab)
    wallet = lab.node.wallet_invoice(120, behaviour="in_flight")
    first, _ = close(lab, session_id, token, {"invoice": wallet.bolt11})
    assert first.status == 200 and first.json["payout"]["status"] == "pending", first.body
    pending = first.json["payout"]
    for body in ({"invoice": wallet.bolt11}, {"invoice": lab.node.wallet_invoice(120).bolt11}, {}):
        again, seconds = close(lab, session_id, token, body)
        assert again.status == 200, again.body
        assert again.json["payout"] == pending and again.json["status"] == "closed" and again.json["held_sats"] == 120
        assert seconds < lab.services.settings.session_close_wait_seconds / 5  # at once, not after the bound
    assert polls == []  # never waited
    view = status(lab, session_id, token)
    assert view["payout"] == pending and (view["held_sats"], view["totals"]["refunded_sats"]) == (120, 0)
    assert [p["payment_hash"] for p in lab.node.listing()["payouts"]] == [wallet.payment_hash]  # paid once

    lab.node.resolve_payment(wallet.payment_hash, True)
    assert lab.services.payouts.sweep().succeeded == 1
    paid = {**pending, "status": "paid"}
    view = status(lab, session_id, token)
    assert view["payout"] == paid and (view["balance_sats"], view["held_sats"], view["totals"]["refunded_sats"]) == (0, 0, 120)
    after, _ = close(lab, session_id, token, {"invoice": lab.node.wallet_invoice(120).bolt11})
    assert after.status == 200 and after.json["payout"] == paid and after.json["totals"]["refunded_sats"] == 120
    assert [p["payment_hash"] for p in lab.node.listing()["payouts"]] == [wallet.payment_hash]


def test_a_failed_payout_is_answered_and_a_close_with_a_new_invoice_pays_the_balance_once(lab: Lab) -> None:
    session_id, token = open_session(lab, 90)
    no_waits(lab)
    lost = lab.node.wallet_invoice(90, behaviour="in_flight")
    first, _ = close(lab, session_id, token, {"invoice": lost.bolt11})
    assert first.json["payout"]["status"] == "pending"
    lab.node.resolve_payment(lost.payment_hash, False)
    assert lab.services.payouts.sweep().failed == 1
    view = status(lab, session_id, token)
    assert view["payout"] == {**first.json["payout"], "status": "failed"} and (view["balance_sats"], view["held_sats"]) == (90, 0)

    same, _ = close(lab, session_id, token, {"invoice": lost.bolt11})  # the failed invoice again: its payout, not a new one
    assert same.status == 200 and same.json["payout"] == view["payout"] and same.json["balance_sats"] == 90
    wallet = lab.node.wallet_invoice(90)
    paid, _ = close(lab, session_id, token, {"invoice": wallet.bolt11})
    assert paid.status == 200 and paid.json["payout"]["status"] == "paid" and paid.json["payout"]["payment_hash"] == wallet.payment_hash
    assert paid.json["balance_sats"] == 0 and paid.json["totals"]["refunded_sats"] == 90
    again, _ = close(lab, session_id, token, {"invoice": lab.node.wallet_invoice(90).bolt11})
    assert again.json["payout"] == paid.json["payout"]  # the last payout, answered; nothing paid again
    outcomes = {p["payment_hash"]: p["state"] for p in lab.node.listing()["payouts"]}
    assert outcomes == {lost.payment_hash: "failed", wallet.payment_hash: "succeeded"}
    assert status(lab, session_id, token)["totals"]["refunded_sats"] == 90


def test_a_top_up_paid_while_the_first_payout_is_in_flight_is_paid_by_its_own_close(lab: Lab) -> None:
    """Two payouts in flight at once hold the balance together; neither is mistaken for a request."""
    session_id, token = open_session(lab, 100)
    polls = no_waits(lab)
    topup = lab.api.post(f"/api/sessions/{session_id}/topup", json_body={"amount_sats": 40}, headers=token).json["invoice"]
    first_wallet = lab.node.wallet_invoice(100, behaviour="in_flight")
    first, _ = close(lab, session_id, token, {"invoice": first_wallet.bolt11})
    assert first.json["payout"]["status"] == "pending"
    lab.pay_and_settle(topup["payment_hash"])
    second_wallet = lab.node.wallet_invoice(40, behaviour="in_flight")
    second, _ = close(lab, session_id, token, {"invoice": second_wallet.bolt11})
    assert second.status == 200 and second.json["payout"]["amount_sats"] == 40 and second.json["payout"]["status"] == "pending"
    third, seconds = close(lab, session_id, token, {})
    assert third.status == 200 and third.json["payout"] == second.json["payout"] and third.json["held_sats"] == 140
    assert polls == [] and seconds < lab.services.settings.session_close_wait_seconds / 5
    for wallet in (first_wallet, second_wallet):
        lab.node.resolve_payment(wallet.payment_hash, True)
    assert lab.services.payouts.sweep().succeeded == 2
    view = status(lab, session_id, token)
    assert (view["balance_sats"], view["held_sats"], view["totals"]["refunded_sats"], view["totals"]["topped_up_sats"]) == (0, 0, 140, 140)
    assert sorted(p["amount_sats"] for p in lab.node.listing()["payouts"]) == [40, 100]
