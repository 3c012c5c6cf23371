"""The LNbits adapter against a real LNbits 1.6.2 (FakeWallet; a payer wallet on the same instance)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from local.dynamodb import free_port
from tests.lnbits_server import Lnbits
from timmy.adapters.lightning_lnbits import LnbitsLightning, lnbits_from_settings
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.errors import Unavailable
from timmy.ports.lightning import InvoiceState, LightningError, LightningUnavailable, PaymentState

HOUR = 3_600


def adapter(url: str, key: str, **kwargs: object) -> LnbitsLightning:
    return LnbitsLightning(url, api_key=lambda: key, timeout_seconds=5.0, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def timmy(lnbits: Lnbits) -> LnbitsLightning:
    lnbits.fund(lnbits.timmy, 10_000)  # for the outgoing payments
    return adapter(lnbits.url, lnbits.timmy.admin_key)


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class WebhookReceiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Delivery]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.deliveries) >= count, timeout)
            return list(self.deliveries)


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    """A local HTTP receiver for LNbits' webhook on a free port; every POST is recorded."""
    port = free_port()
    receiver = WebhookReceiver(f"http://127.0.0.1:{port}/api/webhooks/lightning?token=t0ken")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            with receiver.arrived:
                receiver.deliveries.append(Delivery(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                receiver.arrived.notify_all()
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def test_an_invoice_is_made_for_its_owner_and_looked_up_pending(lnbits: Lnbits, timmy: LnbitsLightning) -> None:
    before = time.time()
    invoice = timmy.create_invoice(21, "donation to the pool", 600, "donation:d-1", "http://127.0.0.1:9/hook")

    assert len(invoice.payment_hash) == 64 and int(invoice.payment_hash, 16) >= 0 and invoice.payment_hash == invoice.payment_hash.lower()
    assert invoice.bolt11.startswith("lnbc210n1")  # 21 sats on mainnet's prefix (FakeWallet's default)
    assert (invoice.amount_sats, invoice.state, invoice.received_sats, invoice.paid_at) == (21, InvoiceState.PENDING, 0, None)
    assert before + 600 - 2 <= invoice.expires_at <= time.time() + 600 + 2  # LNbits' naive UTC expiry, read as UTC
    assert timmy.lookup_invoice(invoice.payment_hash) == invoice
    assert timmy.lookup_invoice(invoice.payment_hash.upper()) == invoice
    details = lnbits.payment(lnbits.timmy, invoice.payment_hash)["details"]
    assert (details["extra"], details["memo"], details["webhook"]) == (
        {"owner": "donation:d-1"},
        "donation to the pool",
        "http://127.0.0.1:9/hook",
    )


def test_a_paid_invoice_reads_paid_with_the_exact_sats_and_its_webhook_comes_twice(
    lnbits: Lnbits, timmy: LnbitsLightning, webhook: WebhookReceiver
) -> None:
    invoice = timmy.create_invoice(1_234, "job", 600, "job:j-1", webhook.url)
    balance = lnbits.balance_msat(lnbits.timmy)

    paid = lnbits.pay(invoice.bolt11)

    assert paid["status"] == "success"
    looked_up = timmy.lookup_invoice(invoice.payment_hash)
    assert looked_up is not None
    assert (looked_up.state, looked_up.received_sats, looked_up.amount_sats) == (InvoiceState.PAID, 1_234, 1_234)
    assert looked_up.paid_at is not None and abs(looked_up.paid_at - time.time()) < 30
    assert lnbits.balance_msat(lnbits.timmy) == balance + 1_234_000
    # LNbits posts the webhook twice for an internal payment (LNbits #4147), unsigned, to the URL as given.
    deliveries = webhook.wait_for(2)
    assert len(deliveries) == 2
    for delivery in deliveries:
        assert delivery.path == "/api/webhooks/lightning?token=t0ken"
        assert delivery.headers["user-agent"] == "LNbits/1.6.2"
        assert not {"authorization", "x-signature", "x-lnbits-signature"} & delivery.headers.keys()
        assert isinstance(json.loads(delivery.body), str)  # JSON encoded twice
        assert timmy.notified_hash(delivery.body, delivery.headers, {"token": "t0ken"}) == invoice.payment_hash


_HASH = "ab" * 32


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(json.dumps({"payment_hash": _HASH, "amount": 1000})), _HASH),  # LNbits' own form
        (json.dumps({"payment_hash": _HASH}), _HASH),  # encoded once
        (json.dumps({"payment_hash": _HASH.upper()}), _HASH),
        ("", None),
        ("not json", None),
        ("null", None),
        ("[]", None),
        (json.dumps("a string"), None),
        (json.dumps(json.dumps(json.dumps({"payment_hash": _HASH}))), None),  # three times is not LNbits
        (json.dumps({"payment_hash": "zz" * 32}), None),
        (json.dumps({"payment_hash": _HASH + "00"}), None),
        (json.dumps({"payment_hash": 12345}), None),
        (json.dumps({"checking_id": _HASH}), None),
        ("[" * 100_000, None),
        (json.dumps({"payment_hash": _HASH, "pad": "x" * 70_000}), None),  # over the size cap
    ],
)
def test_a_notification_names_a_hash_or_nothing(body: str, expected: str | None) -> None:
    lightning = adapter("http://127.0.0.1:9", "unused")
    assert lightning.notified_hash(body, {}, {}) == expected


def test_paying_an_invoice_of_another_wallet_succeeds_and_payment_agrees(lnbits: Lnbits, timmy: LnbitsLightning) -> None:
    invoice = lnbits.payer_invoice(50)
    balances = lnbits.balance_msat(lnbits.timmy), lnbits.balance_msat(lnbits.payer)

    payment = timmy.pay(invoice["bolt11"], 50, fee_limit_sats=2)  # LNbits' minimal fee reserve is 2 sats

    assert (payment.payment_hash, payment.state, payment.amount_sats) == (invoice["payment_hash"], PaymentState.SUCCEEDED, 50)
    assert 0 <= payment.fee_sats <= 2
    assert payment.preimage is not None and hashlib.sha256(bytes.fromhex(payment.preimage)).hexdigest() == payment.payment_hash
    assert timmy.payment(payment.payment_hash) == payment
    assert lnbits.balance_msat(lnbits.timmy) == balances[0] - 50_000 - payment.fee_sats * 1000
    assert lnbits.balance_msat(lnbits.payer) == balances[1] + 50_000


def test_a_fee_limit_below_lnbits_fee_reserve_pays_nothing(lnbits: Lnbits, timmy: LnbitsLightning) -> None:
    invoice = lnbits.payer_invoice(100)
    balance = lnbits.balance_msat(lnbits.timmy)

    with pytest.raises(LightningError, match="fee reserve") as refused:
        timmy.pay(invoice["bolt11"], 100, fee_limit_sats=1)  # LNbits reserves max(2000 msat, 1 %)

    assert not isinstance(refused.value, LightningUnavailable)
    assert timmy.payment(invoice["payment_hash"]) is None
    assert lnbits.balance_msat(lnbits.timmy) == balance


def test_paying_the_same_invoice_twice_pays_once(lnbits: Lnbits, timmy: LnbitsLightning) -> None:
    invoice = lnbits.payer_invoice(70)
    first = timmy.pay(invoice["bolt11"], 70, fee_limit_sats=10)
    balance = lnbits.balance_msat(lnbits.timmy)

    # LNbits answers 520 {"detail": "Internal invoice already paid.", "status": "failed"}: a refusal.
    with pytest.raises(LightningError, match="Internal invoice already paid") as refused:
        timmy.pay(invoice["bolt11"], 70, fee_limit_sats=10)

    assert not isinstance(refused.value, LightningUnavailable)
    assert lnbits.balance_msat(lnbits.timmy) == balance
    assert timmy.payment(invoice["payment_hash"]) == first


@pytest.mark.parametrize("bolt11", ["lnbc1garbage", "", "not an invoice at all"])
def test_paying_garbage_is_refused(lnbits: Lnbits, timmy: LnbitsLightning, bolt11: str) -> None:
    balance = lnbits.balance_msat(lnbits.timmy)
    with pytest.raises(LightningError) as refused:
        timmy.pay(bolt11, 10, fee_limit_sats=10)
    assert not isinstance(refused.value, LightningUnavailable)
    assert lnbits.balance_msat(lnbits.timmy) == balance


def test_unknown_hashes_and_the_other_direction_read_as_none(lnbits: Lnbits, timmy: LnbitsLightning) -> None:
    assert timmy.lookup_invoice("cd" * 32) is None
    assert timmy.payment("cd" * 32) is None
    assert timmy.lookup_invoice("not a hash") is None
    incoming = timmy.create_invoice(5, "x", 600, "donation:d-2", "http://127.0.0.1:9/hook")
    assert timmy.payment(incoming.payment_hash) is None  # an invoice is not an outgoing payment
    payer_side = lnbits.payer_invoice(5)  # another wallet's invoice: LNbits answers 404 to Timmy's key
    assert timmy.lookup_invoice(payer_side["payment_hash"]) is None


def test_an_unpaid_invoice_past_its_expiry_reads_expired(lnbits: Lnbits) -> None:
    clock = FixedClock(time.time())
    lightning = adapter(lnbits.url, lnbits.timmy.admin_key, clock=clock)
    invoice = lightning.create_invoice(8, "x", 60, "donation:d-3", "http://127.0.0.1:9/hook")
    clock.current = invoice.expires_at + 1  # past the expiry LNbits gave, however long the creation took
    looked_up = lightning.lookup_invoice(invoice.payment_hash)
    assert looked_up is not None and (looked_up.state, looked_up.received_sats) == (InvoiceState.EXPIRED, 0)


def test_a_key_of_no_wallet_is_an_error_not_a_pending_invoice(lnbits: Lnbits, timmy: LnbitsLightning) -> None:
    invoice = timmy.create_invoice(3, "x", 600, "donation:d-4", "http://127.0.0.1:9/hook")
    wrong = adapter(lnbits.url, "0" * 32)
    # LNbits answers 200 {"paid": false} without details to a key it does not know.
    with pytest.raises(LightningError, match="not a key of the wallet"):
        wrong.lookup_invoice(invoice.payment_hash)
    with pytest.raises(LightningError) as refused:
        wrong.create_invoice(3, "x", 600, "donation:d-5", "http://127.0.0.1:9/hook")
    assert not isinstance(refused.value, LightningUnavailable)


def test_an_invoice_key_cannot_pay(lnbits: Lnbits) -> None:
    invoice = lnbits.payer_invoice(4)
    with pytest.raises(LightningError, match="403") as refused:
        adapter(lnbits.url, lnbits.timmy.invoice_key).pay(invoice["bolt11"], 4, fee_limit_sats=10)
    assert not isinstance(refused.value, LightningUnavailable)


def _every_call(lightning: LnbitsLightning) -> list[object]:
    return [
        lambda: lightning.create_invoice(1, "x", 60, "donation:d", "http://127.0.0.1:9/hook"),
        lambda: lightning.lookup_invoice(_HASH),
        lambda: lightning.pay("lnbc1x", 1, 10),
        lambda: lightning.payment(_HASH),
    ]


def test_an_lnbits_that_does_not_answer_is_unavailable() -> None:
    closed = adapter(f"http://127.0.0.1:{free_port()}", "key")  # nothing listens there
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        mute = LnbitsLightning(f"http://127.0.0.1:{silent.getsockname()[1]}", api_key=lambda: "key", timeout_seconds=0.3)
        for lightning in (closed, mute):
            for call in _every_call(lightning):
                started = time.monotonic()
                with pytest.raises(LightningUnavailable):
                    call()  # type: ignore[operator]
                assert time.monotonic() - started < 2


@dataclass
class Canned:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


Routes = dict[str, Canned]  # path (without the query) → answer; "*" for every other path


@pytest.fixture
def canned() -> Iterator[tuple[str, Routes]]:
    """A stub server answering each path with the Canned answer the test puts in its routes."""
    routes: Routes = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            answer = routes.get(self.path.split("?")[0], routes["*"])
            self.send_response(answer.status)
            for name, value in {**answer.headers, "Content-Length": str(len(answer.body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", routes
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("answer", "unavailable"),
    [
        (Canned(503, b'{"detail": "down"}'), True),
        (Canned(500, b'{"detail": "Unexpected error! ID: x"}'), True),
        (Canned(520, b'{"detail": "Payment is still pending.", "status": "pending"}'), True),
        (Canned(520, b'{"detail": "no status"}'), True),
        (Canned(429, b'{"detail": "rate limited"}'), True),
        (Canned(200, b"<html>not json</html>", {"Content-Type": "text/html"}), True),
        (Canned(201, b'{"unexpected": true}'), True),
        (Canned(520, b'{"detail": "Insufficient balance.", "status": "failed"}'), False),
        (Canned(400, b'{"detail": "bad"}'), False),
        (Canned(307, b"", {"Location": "/first_install"}), False),
        (Canned(404, b'{"detail": "Not Found"}'), False),  # a wrong URL, not an unknown payment
    ],
)
def test_answers_a_real_lnbits_rarely_gives_are_classified(canned: tuple[str, Routes], answer: Canned, unavailable: bool) -> None:
    url, routes = canned
    routes["*"] = answer
    routes["/api/v1/payments/fee-reserve"] = Canned(200, b'{"fee_reserve": 0}')
    for call in _every_call(adapter(url, "key")):
        with pytest.raises(LightningError) as raised:
            call()  # type: ignore[operator]
        assert isinstance(raised.value, LightningUnavailable) is unavailable, (answer, raised.value)


def test_a_payment_lnbits_leaves_pending_is_in_flight_and_a_failing_fee_reserve_pays_nothing(canned: tuple[str, Routes]) -> None:
    url, routes = canned
    lightning = adapter(url, "key")
    pending = {"payment_hash": _HASH, "amount": -21_000, "fee": -2_000, "status": "pending", "preimage": None, "bolt11": "lnbc1x"}
    routes["*"] = Canned(201, json.dumps(pending).encode())
    routes["/api/v1/payments/fee-reserve"] = Canned(200, b'{"fee_reserve": 2000}')
    payment = lightning.pay("lnbc1x", 21, fee_limit_sats=2)
    assert (payment.state, payment.amount_sats, payment.fee_sats, payment.preimage) == (PaymentState.IN_FLIGHT, 21, 2, None)

    routes["/api/v1/payments/fee-reserve"] = Canned(503, b'{"detail": "down"}')
    with pytest.raises(LightningError, match="nothing was paid") as refused:
        lightning.pay("lnbc1x", 21, fee_limit_sats=2)
    assert not isinstance(refused.value, LightningUnavailable)

    routes["/api/v1/payments/fee-reserve"] = Canned(200, b'{"fee_reserve": 2000}')
    routes["*"] = Canned(201, json.dumps({**pending, "amount": -21_500}).encode())
    with pytest.raises(LightningError, match="whole number of sats"):
        lightning.pay("lnbc1x", 21, fee_limit_sats=2)


def test_the_adapter_is_built_from_the_settings_and_asks_the_key_on_first_use(lnbits: Lnbits) -> None:
    asked: list[int] = []

    def key() -> str:
        asked.append(1)
        return lnbits.timmy.admin_key

    settings = Settings.from_environment({"LIGHTNING_BACKEND": "lnbits", "LNBITS_URL": lnbits.url + "/", "LNBITS_TIMEOUT_SECONDS": "3"})
    lightning = lnbits_from_settings(settings, key)
    assert (lightning.base_url, lightning.timeout_seconds, asked) == (lnbits.url, 3.0, [])
    assert lightning.lookup_invoice("ef" * 32) is None and asked == [1]
    with pytest.raises(Unavailable, match="LNBITS_URL"):
        lnbits_from_settings(Settings(lightning_backend="lnbits"), key)
