"""Fake public exchange APIs on free local ports, each switchable between behaviours."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SLOW_SECONDS = 1.5


def _body(kind: str, price: str) -> dict[str, Any]:
    if kind == "coinbase":
        return {"data": {"amount": price, "base": "BTC", "currency": "USD"}}
    if kind == "kraken":
        return {"error": [], "result": {"XXBTZUSD": {"a": [price, "1", "1.0"], "c": [price, "0.01"]}}}
    return {"last": price, "high": price, "low": price}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        fake = self.server.fake
        fake.requests += 1
        try:
            if fake.mode == "slow":
                time.sleep(SLOW_SECONDS)
            if fake.mode == "error":
                self._send(500, b'{"message": "internal"}')
            elif fake.mode == "garbage":
                self._send(200, b"<html>we are down for maintenance</html>")
            elif fake.mode == "wrong_shape":
                self._send(200, b'{"data": [1, 2, 3]}')
            else:
                self._send(200, json.dumps(_body(fake.kind, fake.price)).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the oracle gave up on a slow answer: expected

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
    fake: FakeExchange


class FakeExchange:
    """One exchange API; `mode` is ok, slow, error, garbage, wrong_shape or down."""

    def __init__(self, kind: str, price: str = "100000.00"):
        self.kind, self.price, self.mode, self.requests = kind, price, "ok", 0
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        """Stop listening: connections are refused from now on."""
        if self.mode != "down":
            self.mode = "down"
            self.server.shutdown()
            self.server.server_close()

    def close(self) -> None:
        self.down()
        self.thread.join(timeout=5)
