"""Sessions (issue 13): a prepaid balance, requests held on it, top-ups, close — and the peers'
money-losing bugs as regression tests. The ledger audit runs after each test (`table_name`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.lnurl_server import FakeLnurlServer
from tests.integration.payments.conftest import Lab
from timmy.errors import PaymentRequired
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


def test_a_request_the_balance_cannot_hold_is_a_402_with_the_shortfall(lab: Lab) -> None:
    session_id, token = open_session(lab, 10)
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (answer.status, answer.error_code) == (402, "insufficient_balance")
    assert answer.json["error"]["shortfall_sats"] == estimate(lab) - 10
    assert status(lab, session_id, token)["balance_sats"] == 10


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
    admin = {"authorization": "Bearer test-admin-key"}
    assert lab.api.put(f"/api/admin/identities/{keys.pubkey}", json_body={"tier": "elite"}, headers=admin).status == 200
    bearer = {"authorization": f"Bearer {lab.services.identity.issue_token(keys.pubkey).token}"}
    session_id, token = open_session(lab, 100, headers=bearer)
    assert status(lab, session_id, token)["pubkey"] == keys.pubkey
    answer = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert answer.status == 200, answer.body
    assert answer.json["charged_sats"] == 0 and answer.json["absorbed_sats"] > 0 and answer.json["balance_sats"] == 100
    assert answer.json["free_tier"]["serve"] == "free"


def test_a_partial_request_with_the_pool_drained_during_the_work_is_charged_in_full_from_the_hold(lab: Lab) -> None:
    keys = Keys.generate()
    admin = {"authorization": "Bearer test-admin-key"}
    assert lab.api.put(f"/api/admin/identities/{keys.pubkey}", json_body={"tier": "trusted"}, headers=admin).status == 200
    bearer = {"authorization": f"Bearer {lab.services.identity.issue_token(keys.pubkey).token}"}
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
    assert answer.json["charged_sats"] > 0 and answer.json["balance_sats"] == 5_000 - answer.json["charged_sats"]


def test_close_pays_the_balance_once_and_refuses_requests_after(lab: Lab) -> None:
    session_id, token = open_session(lab, 300)
    spent = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token).json["charged_sats"]
    wallet = lab.node.wallet_invoice(300 - spent)
    first = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": wallet.bolt11}, headers=token)
    assert first.status == 200, first.body
    assert first.json["status"] == "closed" and first.json["payout"]["status"] == "paid" and first.json["balance_sats"] == 0
    again = lab.api.post(f"/api/sessions/{session_id}/close", json_body={"invoice": wallet.bolt11}, headers=token)
    assert again.status == 200 and again.json["payout"] is None  # nothing left: paid once (Routstr #394, #412)
    assert [p["payment_hash"] for p in lab.node.listing()["payouts"]] == [wallet.payment_hash]
    late = lab.api.post(f"/api/sessions/{session_id}/request", json_body=WORK, headers=token)
    assert (late.status, late.error_code) == (409, "session_not_active")
    totals = status(lab, session_id, token)["totals"]
    assert totals["charged_sats"] + totals["refunded_sats"] == totals["topped_up_sats"] == 300


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
