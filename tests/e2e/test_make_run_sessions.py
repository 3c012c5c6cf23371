"""Sessions through `make run`, as a client uses them (issue 13): the HTTP API, the simulated node
(`/dev/lightning/pay` pays Timmy's invoices, `/dev/lightning/invoices` makes a wallet's), the
settlement queue, and the sessions function in its execution environments. Create → pay → active →
requests (free for a trusted identity's session, paid otherwise) → top-up → close paid once; and 32
requests at once on a balance that holds 10 estimates. The ledger audit is clean after each."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.dynamodb import free_port
from tests.e2e.test_make_run import start, stop, wait_healthy
from tests.e2e.test_make_run_money import audit_ok, call, signed_in
from timmy.identity.signer import Keys

pytestmark = pytest.mark.slow
MODEL = "claude-sonnet-4-5"
WORK = {"request": "Write a haiku about the sea", "model": MODEL, "max_output_tokens": 4000}
# The deterministic executor's answer fills a 16-token cap exactly and reports the input's bound:
# the actual cost is the estimate, so a balance of 10 estimates runs exactly 10 of these.
FULL = {"request": " ".join(["sea"] * 2000), "model": MODEL, "max_output_tokens": 16}
WAIT_SECONDS = 30


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    # 32 requests queue for the function's 4 environments: let them wait rather than be throttled.
    process = start(port, tmp_path_factory.mktemp("make-run-sessions") / "data", {"TIMMY_LOCAL_THROTTLE_SECONDS": "60"})
    try:
        wait_healthy(port, process, 90)
        yield port
    finally:
        stop(process, signal.SIGTERM)


def session_view(port: int, session_id: str, token: dict[str, str]) -> dict[str, Any]:
    status, view = call(port, "GET", f"/api/sessions/{session_id}", headers=token)
    assert status == 200, view
    return dict(view)


def wait_session(port: int, session_id: str, token: dict[str, str], done: Any) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_SECONDS
    view = session_view(port, session_id, token)
    while not done(view) and time.monotonic() < deadline:
        time.sleep(0.05)
        view = session_view(port, session_id, token)
    return view


def pay(port: int, invoice: dict[str, Any]) -> None:
    status, paid = call(port, "POST", "/dev/lightning/pay", {"bolt11": invoice["bolt11"]})
    assert (status, paid["status"]) == (200, "paid"), paid


def open_session(port: int, amount_sats: int, headers: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """Create, pay through the simulated node, and wait for the settlement to make it active."""
    status, created = call(port, "POST", "/api/sessions", {"amount_sats": amount_sats}, headers)
    assert (status, created["status"]) == (201, "awaiting_payment"), created
    session_id, token = created["session_id"], {"x-session-token": created["session_token"]}
    status, early = call(port, "POST", f"/api/sessions/{session_id}/request", WORK, token)
    assert (status, early["error"]["code"]) == (409, "session_not_active")  # not paid yet
    pay(port, created["invoice"])
    view = wait_session(port, session_id, token, lambda v: v["status"] == "active")
    assert view["status"] == "active" and view["balance_sats"] == amount_sats, view
    return session_id, token


def wallet_invoice(port: int, amount_sats: int) -> dict[str, Any]:
    status, invoice = call(port, "POST", "/dev/lightning/invoices", {"amount_sats": amount_sats})
    assert status == 201, invoice
    return dict(invoice)


def test_a_paid_session_through_make_run_tops_up_and_closes_paid_once(port: int) -> None:
    session_id, token = open_session(port, 500)
    other_id, other = open_session(port, 50)
    status, refused = call(port, "POST", f"/api/sessions/{session_id}/request", WORK, other)
    assert (status, refused["error"]["code"]) == (401, "invalid_session_token")  # Aperture 625382f

    status, answer = call(port, "POST", f"/api/sessions/{session_id}/request", WORK, token)
    assert status == 200, answer
    charged = answer["charged_sats"]
    assert answer["result"] and answer["free_tier"]["serve"] == "gate" and answer["absorbed_sats"] == 0
    estimated = call(port, "POST", "/api/estimate", WORK)[1]["estimated_sats"]
    assert 0 < charged <= estimated and answer["balance_sats"] == 500 - charged

    status, topup = call(port, "POST", f"/api/sessions/{session_id}/topup", {"amount_sats": 100}, token)
    assert status == 201, topup
    pay(port, topup["invoice"])
    view = wait_session(port, session_id, token, lambda v: v["balance_sats"] == 600 - charged)
    assert view["balance_sats"] == 600 - charged and view["held_sats"] == 0 and view["status"] == "active"

    wallet = wallet_invoice(port, 600 - charged)
    status, closed = call(port, "POST", f"/api/sessions/{session_id}/close", {"invoice": wallet["bolt11"]}, token)
    assert status == 200, closed
    assert closed["status"] == "closed" and closed["payout"]["status"] == "paid" and closed["balance_sats"] == 0
    for invoice in (wallet, wallet_invoice(port, 600 - charged)):  # the same invoice again, then a new one
        status, again = call(port, "POST", f"/api/sessions/{session_id}/close", {"invoice": invoice["bolt11"]}, token)
        assert (status, again["status"], again["payout"]) == (200, "closed", closed["payout"]), again  # nothing left: the payout, paid once
    payouts = call(port, "GET", "/dev/lightning/invoices")[1]["payouts"]
    assert [p["payment_hash"] for p in payouts if p["amount_sats"] == 600 - charged] == [wallet["payment_hash"]]

    status, late = call(port, "POST", f"/api/sessions/{session_id}/request", WORK, token)
    assert (status, late["error"]["code"]) == (409, "session_not_active")
    status, late_topup = call(port, "POST", f"/api/sessions/{session_id}/topup", {"amount_sats": 10}, token)
    assert (status, late_topup["error"]["code"]) == (409, "session_closed")
    totals = session_view(port, session_id, token)["totals"]
    assert totals == {"topped_up_sats": 600, "charged_sats": charged, "absorbed_sats": 0, "refunded_sats": 600 - charged, "requests": 1}
    assert session_view(port, other_id, other)["balance_sats"] == 50  # the other session untouched
    audit_ok(port)


def test_a_trusted_identitys_session_through_make_run_is_served_free(port: int) -> None:
    keys = Keys.generate()
    session_id, session_token = open_session(port, 100, signed_in(port, keys, "trusted"))
    assert session_view(port, session_id, session_token)["pubkey"] == keys.pubkey  # bound to the identity

    pool = call(port, "GET", "/api/pool")[1]["balance_sats"]
    status, answer = call(port, "POST", f"/api/sessions/{session_id}/request", WORK, session_token)
    assert status == 200, answer
    assert answer["free_tier"]["serve"] == "free" and answer["charged_sats"] == 0 and answer["absorbed_sats"] > 0
    assert answer["balance_sats"] == 100 and call(port, "GET", "/api/pool")[1]["balance_sats"] == pool - answer["absorbed_sats"]

    wallet = wallet_invoice(port, 100)
    status, closed = call(port, "POST", f"/api/sessions/{session_id}/close", {"invoice": wallet["bolt11"]}, session_token)
    assert (status, closed["payout"]["status"], closed["balance_sats"]) == (200, "paid", 0), closed
    audit_ok(port)


def test_32_requests_at_once_over_http_on_a_balance_of_10_estimates(port: int) -> None:
    status, quoted = call(port, "POST", "/api/estimate", FULL)
    assert status == 200, quoted
    estimate = quoted["estimated_sats"]
    session_id, token = open_session(port, estimate * 10)
    start_together = threading.Barrier(32)

    def one(_: int) -> tuple[int, Any]:
        start_together.wait(WAIT_SECONDS)
        return call(port, "POST", f"/api/sessions/{session_id}/request", FULL, token)

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(32)))
    ran = [body for status, body in answers if status == 200]
    refused = [body for status, body in answers if status != 200]
    assert all(body["error"]["code"] == "insufficient_balance" for body in refused), refused  # 402, not 429 or 5xx
    assert {status for status, _ in answers} <= {200, 402}
    # Each ran request was charged its estimate (the hold it took) and saw a balance never below 0.
    assert [body["charged_sats"] for body in ran] == [estimate] * len(ran)
    assert all(body["balance_sats"] >= 0 for body in ran)
    # The ledger: what left the balance is the sum of the charges, all holds are settled. Each booking
    # is at most its hold (the estimate), so bookings summing to len(ran) estimates are each the estimate.
    view = session_view(port, session_id, token)
    assert view["held_sats"] == 0 and view["balance_sats"] == estimate * 10 - sum(body["charged_sats"] for body in ran) >= 0
    assert view["totals"]["requests"] == len(ran) and view["totals"]["charged_sats"] == estimate * len(ran)
    assert len(ran) == 10 and len(refused) == 22  # at most 10 fit; as every one costs its estimate, exactly 10
    audit_ok(port)
