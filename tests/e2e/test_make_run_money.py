"""Money through `make run`, as a new user tries it (issues 11 and 12): the HTTP API, the simulated
node's webhook, the settlement and work queues and their functions in their execution
environments. A donation grows the pool by exactly its amount, once; a free job and a paid job run
to complete and the paid one's refund is paid once — the ledger audit clean after each."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.dynamodb import free_port
from tests.e2e.test_make_run import start, stop, wait_healthy
from timmy.identity.signer import Keys

pytestmark = pytest.mark.slow
ADMIN_KEY = "local-admin-key"  # make run's default


def call(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    process = start(port, tmp_path_factory.mktemp("make-run") / "data")
    try:
        wait_healthy(port, process, 90)
        yield port
    finally:
        stop(process, signal.SIGTERM)


def audit_ok(port: int) -> None:
    status, audit = call(port, "GET", "/api/admin/audit", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert status == 200 and audit["ok"], audit


def signed_in(port: int, keys: Keys, tier: str) -> dict[str, str]:
    """`keys` pinned to `tier` by the operator and signed in with NIP-98: its bearer header."""
    assert call(port, "PUT", f"/api/admin/identities/{keys.pubkey}", {"tier": tier}, {"authorization": f"Bearer {ADMIN_KEY}"})[0] == 200
    url = f"http://127.0.0.1:{port}/api/identity/token"
    status, token = call(port, "POST", "/api/identity/token", headers={"authorization": keys.nip98_header(url, "POST")})
    assert status == 200, token
    return {"authorization": f"Bearer {token['token']}"}


def wait_for(port: int, path: str, done: Callable[[Any], bool], seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        answer = call(port, "GET", path)[1]
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_a_donation_through_make_run_grows_the_pool_by_its_amount_once(port: int) -> None:
    before = call(port, "GET", "/api/pool")[1]["balance_sats"]
    status, donation = call(port, "POST", "/api/pool/donations", {"amount_sats": 1234, "note": "first!"})
    assert status == 201, donation
    payment_hash = donation["invoice"]["payment_hash"]

    paid_at = time.monotonic()
    status, paid = call(port, "POST", "/dev/lightning/pay", {"bolt11": donation["invoice"]["bolt11"]})
    assert (status, paid["status"]) == (200, "paid"), paid
    balance = before
    while balance == before and time.monotonic() - paid_at < 30:
        time.sleep(0.05)
        balance = call(port, "GET", "/api/pool")[1]["balance_sats"]
    assert balance == before + 1234
    status, again = call(port, "POST", "/dev/lightning/pay", {"payment_hash": payment_hash})
    assert (status, again["error"]["code"]) == (409, "not_payable")  # a settled hash cannot be paid twice

    listing = call(port, "GET", "/dev/lightning/invoices")[1]
    (invoice,) = [i for i in listing["invoices"] if i["payment_hash"] == payment_hash]
    assert invoice["state"] == "paid" and "token" not in invoice["webhook_url"]
    time.sleep(1.5)  # a sweep may run meanwhile: it books nothing more
    assert call(port, "GET", "/api/pool")[1]["balance_sats"] == before + 1234
    audit_ok(port)


def test_a_free_job_and_a_paid_job_through_make_run(port: int) -> None:
    body = {"request": "Write a haiku about the sea", "model": "claude-sonnet-4-5", "max_output_tokens": 4000}
    status, free = call(port, "POST", "/api/jobs", body, signed_in(port, Keys.generate(), "elite"))
    assert (status, free["status"]) == (202, "executing"), free
    done = wait_for(port, f"/api/jobs/{free['job_id']}", lambda j: j["status"] == "complete")
    assert done["status"] == "complete" and done["charged_sats"] == 0 and done["absorbed_sats"] > 0

    status, paid = call(port, "POST", "/api/jobs", body)
    assert (status, paid["status"]) == (201, "awaiting_payment"), paid
    assert call(port, "POST", "/dev/lightning/pay", {"bolt11": paid["invoice"]["bolt11"]})[0] == 200
    done = wait_for(port, f"/api/jobs/{paid['job_id']}", lambda j: j["status"] == "complete")
    assert done["status"] == "complete" and done["charged_sats"] > 0 and done["refundable_sats"] > 0
    status, wallet = call(port, "POST", "/dev/lightning/invoices", {"amount_sats": done["refundable_sats"]})
    assert status == 201
    for _ in range(2):  # claimed twice: paid once
        status, refunded = call(port, "POST", f"/api/jobs/{paid['job_id']}/refund", {"invoice": wallet["bolt11"]})
        assert (status, refunded["payout"]["status"]) == (200, "paid"), refunded
    payouts = call(port, "GET", "/dev/lightning/invoices")[1]["payouts"]
    assert [p["payment_hash"] for p in payouts].count(wallet["payment_hash"]) == 1
    audit_ok(port)
