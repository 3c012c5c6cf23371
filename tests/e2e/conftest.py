"""The local stack for end-to-end tests: moto's SQS (one per session), a fresh table and queues per
test, and the HTTP gateway on a free port calling the real handlers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from http.client import HTTPConnection
from typing import Any

import pytest

from local.gateway import Gateway
from local.handlers import HandlerLoader
from local.sqs import LocalSQS
from timmy_http.services import reset_services


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Stack:
    gateway: Gateway
    loader: HandlerLoader
    sqs: LocalSQS

    def request(self, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None) -> Answer:
        connection = HTTPConnection("127.0.0.1", self.gateway.port, timeout=30)
        try:
            raw = body.encode() if isinstance(body, str) else body
            connection.request(method, path, body=raw, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()


@pytest.fixture
def stack(table_name: str, local_sqs: LocalSQS, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """Gateway -> handlers -> DynamoDB Local and moto SQS, as `make run` wires them."""
    for name, value in local_sqs.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("ADMIN_API_KEY_SECRET_NAME", "TOKEN_SECRET_NAME", "LIGHTNING_API_KEY_SECRET_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIGHTNING_BACKEND", os.environ.get("LIGHTNING_BACKEND", "simulated"))
    monkeypatch.setenv("PRICE_SOURCE", "fixed")
    reset_services()
    loader = HandlerLoader(watch=False)
    gateway = Gateway(0, loader).start()
    try:
        yield Stack(gateway, loader, local_sqs)
    finally:
        gateway.stop()
        reset_services()
