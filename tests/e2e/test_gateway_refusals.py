"""What the local gateway's HTTP server refuses itself still answers in the contract's error shape."""

from __future__ import annotations

import json
import socket
import time
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


def test_a_transfer_encoding_other_than_none_is_refused_and_the_connection_closed(gateway: Gateway) -> None:
    smuggled = b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n"
    request = b"POST /api/estimate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n" + smuggled
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 501") and answer.count(b"HTTP/1.1") == 1  # the smuggled GET is not answered
    assert b'"unsupported_transfer_encoding"' in answer and b"connection: close" in answer.lower()


def test_duplicate_content_lengths_are_refused(gateway: Gateway) -> None:
    status, body = _exchange(gateway, b"POST /api/estimate HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}")
    assert status == 400 and body["error"]["code"] == "bad_request"  # type: ignore[index]


def test_head_answers_like_get_without_a_body_and_server_names_no_python(gateway: Gateway) -> None:
    answers = {}
    for method in (b"GET", b"HEAD"):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as connection:
            connection.sendall(method + b" /api/pool HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := connection.recv(65536):
                answer += chunk
        answers[method] = answer.partition(b"\r\n\r\n")
    head, _, body = answers[b"HEAD"]
    assert head.startswith(b"HTTP/1.1 200") and body == b""
    assert answers[b"GET"][0].startswith(b"HTTP/1.1 200") and answers[b"GET"][2]
    server = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"server:"))
    assert server == b"Server: timmy-local-gateway"


def test_a_slow_body_closes_the_connection(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from local import gateway as module

    monkeypatch.setattr(module._RequestHandler, "timeout", 0.5)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as connection:
        connection.sendall(b"POST /api/estimate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        started = time.monotonic()
        assert connection.recv(65536) == b""  # closed by the server, not held open
        assert time.monotonic() - started < 5


def test_slow_headers_close_the_connection(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    from local import gateway as module

    monkeypatch.setattr(module._RequestHandler, "timeout", 0.5)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as connection:
        connection.sendall(b"GET /api/pool HTTP/1.1\r\nHost: x\r\n")  # the blank line that ends the headers never comes
        started = time.monotonic()
        assert connection.recv(65536) == b""
        assert time.monotonic() - started < 5
