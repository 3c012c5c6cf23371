"""A donation end to end through `make run` (issue 11), as a new user tries it: the HTTP API, the
simulated node's webhook, the settlement queue and its function in their execution environments,
and the pool growing by exactly the amount, once — the ledger audit clean at the end."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from local.dynamodb import free_port
from tests.e2e.test_make_run import start, stop, wait_healthy

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


def test_a_donation_through_make_run_grows_the_pool_by_its_amount_once(tmp_path: Path) -> None:
    port = free_port()
    process = start(port, tmp_path / "data")
    try:
        wait_healthy(port, process, 90)
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
        status, audit = call(port, "GET", "/api/admin/audit", headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert status == 200 and audit["ok"], audit
    finally:
        stop(process, signal.SIGTERM)
