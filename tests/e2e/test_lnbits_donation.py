"""A donation end to end against a real LNbits 1.6.2 (issue 11): the gateway on a socket, LNbits'
real webhook (JSON encoded twice, delivered twice), the settlement queue and function, and the
pool growing by exactly the amount, once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from local.poller import Poller, mappings_from
from tests.e2e.conftest import Stack
from tests.lnbits_server import Lnbits
from timmy.ledger.model import TransferCode
from timmy_http.services import services


@pytest.fixture
def lnbits_backend(lnbits: Lnbits, monkeypatch: pytest.MonkeyPatch) -> Lnbits:
    monkeypatch.setenv("LIGHTNING_BACKEND", "lnbits")
    monkeypatch.setenv("LNBITS_URL", lnbits.url)
    monkeypatch.setenv("LIGHTNING_API_KEY", lnbits.timmy.admin_key)
    return lnbits


@pytest.fixture
def settling(lnbits_backend: Lnbits, stack: Stack) -> Iterator[Poller]:
    mapping = next(m for m in mappings_from(stack.loader) if m.queue == "SettlementQueue")
    poller = Poller(stack.sqs, stack.loader, mappings=[replace(mapping, batching_window_seconds=0)]).start()
    try:
        yield poller
    finally:
        poller.stop()


def _pool(stack: Stack) -> int:
    return int(stack.request("GET", "/api/pool").json()["balance_sats"])


def test_a_donation_paid_through_lnbits_grows_the_pool_by_its_amount_once(lnbits_backend: Lnbits, stack: Stack, settling: Poller) -> None:
    before = _pool(stack)
    answer = stack.request("POST", "/api/pool/donations", json.dumps({"amount_sats": 321}), {"content-type": "application/json"})
    assert answer.status == 201, answer.body
    invoice = answer.json()["invoice"]
    assert invoice["amount_sats"] == 321 and invoice["bolt11"].startswith("lnbc")

    lnbits_backend.pay(invoice["bolt11"])
    deadline = time.monotonic() + 30
    while _pool(stack) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pool(stack) == before + 321
    time.sleep(1.5)  # LNbits' second delivery of the same webhook, and its settlement
    assert _pool(stack) == before + 321
    assert settling.batches >= 1
    transfer = services().ledger.require_transfer(f"invoice:{invoice['payment_hash']}")
    assert (transfer.code, transfer.amount_sats) == (TransferCode.POOL_DONATION, 321)
    assert stack.sqs.approximate_counts("SettlementQueue") == (0, 0)
