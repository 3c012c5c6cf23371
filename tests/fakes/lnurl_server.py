"""A local LNURL-pay server for Lightning addresses (LUD-06/LUD-16) that signs real BOLT11 invoices.

`GET /.well-known/lnurlp/<name>` answers the pay request; `GET /lnurlp/<name>/callback?amount=<msat>`
answers `{"pr": <bolt11>, "routes": []}`, the invoice's description hash being sha256(metadata).
`mode` switches the answers: ok, wrong_amount, wrong_hash, no_hash (a plain description instead),
expired, error_status (`{"status": "ERROR"}`), not_pay_request, server_error, redirect, garbage,
private_callback (a callback to a private host over http).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags, encode

MIN_SENDABLE_MSAT = 1_000
MAX_SENDABLE_MSAT = 100_000_000


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        with fake.lock:
            fake.requests.append(self.path)
        if fake.mode == "server_error":
            return self._send(500, b"oops")
        if fake.mode == "redirect":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if fake.mode == "garbage":
            return self._send(200, b"<html>hello</html>")
        if parts.path.startswith("/.well-known/lnurlp/"):
            return self._json(fake.pay_request(parts.path.rsplit("/", 1)[1]))
        if parts.path.endswith("/callback"):
            amount = int(parse_qs(parts.query)["amount"][0])
            fake.comments.extend(parse_qs(parts.query).get("comment", []))
            return self._json(fake.callback(parts.path.split("/")[2], amount))
        return self._json({"status": "ERROR", "reason": "not found"}, 404)

    def _json(self, body: dict[str, Any], status: int = 200) -> None:
        self._send(status, json.dumps(body).encode())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLnurlServer


class FakeLnurlServer:
    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[str] = []
        self.comments: list[str] = []
        self.invoices: list[str] = []
        self.lock = threading.Lock()
        self.node_key = secrets.token_hex(32)
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def address(self, name: str = "alice") -> str:
        return f"{name}@127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def metadata(self, name: str) -> str:
        return json.dumps([["text/plain", f"Refund to {name}"], ["text/identifier", f"{name}@127.0.0.1:{self.port}"]])

    def pay_request(self, name: str) -> dict[str, Any]:
        if self.mode == "error_status":
            return {"status": "ERROR", "reason": "unknown user"}
        callback = f"http://127.0.0.1:{self.port}/lnurlp/{name}/callback"
        if self.mode == "private_callback":
            callback = "http://10.0.0.7/lnurlp/callback"
        return {
            "tag": "withdrawRequest" if self.mode == "not_pay_request" else "payRequest",
            "callback": callback,
            "minSendable": MIN_SENDABLE_MSAT,
            "maxSendable": MAX_SENDABLE_MSAT,
            "metadata": self.metadata(name),
            "commentAllowed": 32,
        }

    def callback(self, name: str, amount_msat: int) -> dict[str, Any]:
        metadata = self.metadata(name)
        description = (
            Tag(TagChar.description, "a refund")
            if self.mode == "no_hash"
            else Tag(TagChar.description_hash, hashlib.sha256((metadata + ("x" if self.mode == "wrong_hash" else "")).encode()).hexdigest())
        )
        invoice = Bolt11(
            currency="bcrt",
            date=int(time.time()) - (7_200 if self.mode == "expired" else 0),
            amount_msat=MilliSatoshi(amount_msat + (1_000 if self.mode == "wrong_amount" else 0)),
            tags=Tags(
                [
                    Tag(TagChar.payment_hash, secrets.token_hex(32)),
                    Tag(TagChar.payment_secret, secrets.token_hex(32)),
                    description,
                    Tag(TagChar.expire_time, 3_600),
                ]
            ),
        )
        bolt11 = encode(invoice, self.node_key)
        self.invoices.append(bolt11)
        return {"pr": bolt11, "routes": []}
