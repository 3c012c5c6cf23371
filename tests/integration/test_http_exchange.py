"""The bounded HTTP exchange the provider adapters share: pinning, size cap, no redirects."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakes.lnurl_server import FakeLnurlServer
from timmy.adapters.http_json import HttpAnswerTooLarge, HttpUnreachable, exchange


@pytest.fixture
def server() -> Iterator[FakeLnurlServer]:
    fake = FakeLnurlServer()
    try:
        yield fake
    finally:
        fake.close()


def test_a_pinned_connection_goes_to_the_checked_address_whatever_the_name(server: FakeLnurlServer) -> None:
    url = f"http://no-such-host.invalid:{server.port}/.well-known/lnurlp/alice"
    with pytest.raises(HttpUnreachable):
        exchange("GET", url, timeout_seconds=2.0, body_bytes_max=65_536)  # the name does not resolve
    answer = exchange("GET", url, timeout_seconds=2.0, body_bytes_max=65_536, connect_to="127.0.0.1")
    assert answer.status == 200 and answer.json()["tag"] == "payRequest"


def test_an_answer_over_the_size_limit_is_refused(server: FakeLnurlServer) -> None:
    with pytest.raises(HttpAnswerTooLarge):
        exchange("GET", f"http://127.0.0.1:{server.port}/.well-known/lnurlp/alice", timeout_seconds=2.0, body_bytes_max=10)


def test_redirects_come_back_as_they_are(server: FakeLnurlServer) -> None:
    server.mode = "redirect"
    answer = exchange("GET", f"http://127.0.0.1:{server.port}/x", timeout_seconds=2.0, body_bytes_max=1_000)
    assert answer.status == 302 and len(server.requests) == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "http:///nohost"])
def test_only_http_urls_are_called(url: str) -> None:
    with pytest.raises(ValueError):
        exchange("GET", url, timeout_seconds=1.0, body_bytes_max=10)
