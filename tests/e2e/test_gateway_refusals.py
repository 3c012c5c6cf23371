"""What the local gateway's HTTP server refuses itself still answers in the contract's error shape."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from local.gateway import Gateway
from local.handlers import HandlerLoader
from timmy_http.services import Services


@pytest.fixture
def gateway(services: Services) -> Iterator[Gateway]:
    server = Gateway(0, HandlerLoader(watch=False)).start()
    yield server
    server.stop()


def _exchange(gateway: Gateway, request: bytes) -> tuple[int, dict[str, object]]:
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), None)
            if length is not None and len(body) >= length:
                break
    status = int(head.split(b" ")[1])
    return status, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /api/estimate HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /api/estimate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 411),
        (b"GET /api/pool HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"BREW /api/pool HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405),
    ],
)
def test_requests_the_server_cannot_take_get_the_error_shape(gateway: Gateway, request_bytes: bytes, status: int) -> None:
    answered, body = _exchange(gateway, request_bytes)
    assert answered == status
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])  # type: ignore[arg-type]
