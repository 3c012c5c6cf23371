"""Lightning-address refunds: the LNURL-pay resolver against a local LNURL-pay server."""

from __future__ import annotations

from collections.abc import Iterator

import bolt11
import pytest

from tests.fakes.lnurl_server import FakeLnurlServer
from timmy.adapters.lnurl_pay import LnurlPayResolver
from timmy.config import Settings
from timmy.errors import InvalidInput
from timmy.ports.lnurl import LnurlRefused, LnurlUnreachable, parse_lightning_address


@pytest.fixture
def server() -> Iterator[FakeLnurlServer]:
    fake = FakeLnurlServer()
    try:
        yield fake
    finally:
        fake.close()


def resolver() -> LnurlPayResolver:
    return LnurlPayResolver(timeout_seconds=2.0, allow_local=True)


def test_an_address_resolves_to_a_checked_invoice_for_the_exact_amount(server: FakeLnurlServer) -> None:
    resolved = resolver().invoice_for(server.address("alice"), 21, comment="refund of job j-1")
    decoded = bolt11.decode(resolved.bolt11)
    assert (resolved.amount_sats, decoded.amount_msat, resolved.payment_hash) == (21, 21_000, decoded.payment_hash)
    assert server.requests[0] == "/.well-known/lnurlp/alice"
    assert server.requests[1].startswith("/lnurlp/alice/callback?amount=21000")
    assert server.comments == ["refund of job j-1"]
    assert resolved.address == server.address("alice")


def test_an_invoice_with_a_plain_description_is_accepted(server: FakeLnurlServer) -> None:
    server.mode = "no_hash"
    assert resolver().invoice_for(server.address(), 5).amount_sats == 5


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("wrong_amount", "not the 21000 asked"),
        ("wrong_hash", "description hash"),
        ("expired", "expired"),
        ("error_status", "unknown user"),
        ("not_pay_request", "not an LNURL-pay endpoint"),
        ("garbage", "not an LNURL JSON object"),
        ("redirect", "HTTP 302"),
    ],
)
def test_a_wrong_answer_is_refused_and_not_retryable(server: FakeLnurlServer, mode: str, says: str) -> None:
    server.mode = mode
    with pytest.raises(LnurlRefused, match=says) as refused:
        resolver().invoice_for(server.address(), 21)
    assert not refused.value.retryable


def test_a_redirect_is_never_followed(server: FakeLnurlServer) -> None:
    server.mode = "redirect"
    with pytest.raises(LnurlRefused):
        resolver().invoice_for(server.address(), 21)
    assert len(server.requests) == 1


def test_a_callback_to_a_private_http_host_is_refused_before_it_is_called(server: FakeLnurlServer) -> None:
    server.mode = "private_callback"
    with pytest.raises(LnurlRefused, match="must be https"):
        resolver().invoice_for(server.address(), 21)
    assert len(server.requests) == 1


def test_an_amount_the_service_does_not_accept_asks_no_invoice(server: FakeLnurlServer) -> None:
    with pytest.raises(LnurlRefused, match="accepts 1000–100000000 msat"):
        resolver().invoice_for(server.address(), 100_001)
    assert len(server.requests) == 1


def test_a_server_error_or_a_service_that_is_down_is_retryable(server: FakeLnurlServer) -> None:
    server.mode = "server_error"
    with pytest.raises(LnurlUnreachable) as unreachable:
        resolver().invoice_for(server.address(), 21)
    assert unreachable.value.retryable
    address = server.address()
    server.close()
    with pytest.raises(LnurlUnreachable):
        resolver().invoice_for(address, 21)


@pytest.mark.parametrize(
    "address",
    [
        "alice",
        "alice@",
        "@example.com",
        "a@b@example.com",
        "alice@localhost",
        "alice@127.0.0.1:8080",
        "alice@10.0.0.1",
        "alice@example",
        "al ice@example.com",
        "alice@exa_mple.com",
        "alice@-example.com",
        "x" * 65 + "@example.com",
        42,
        None,
    ],
)
def test_malformed_or_local_addresses_are_a_400(address: object) -> None:
    with pytest.raises(InvalidInput) as invalid:
        parse_lightning_address(address)
    assert invalid.value.code == "invalid_refund_address"


def test_addresses_are_lower_cased() -> None:
    assert str(parse_lightning_address(" Alice.B+tips@Wallet.Example.COM ")) == "alice.b+tips@wallet.example.com"


def test_local_addresses_only_with_the_test_flag() -> None:
    assert str(parse_lightning_address("bob@localhost:8080", allow_local=True)) == "bob@localhost:8080"
    with pytest.raises(InvalidInput):
        LnurlPayResolver(timeout_seconds=1.0).invoice_for("bob@localhost:8080", 1)


def test_hosts_that_resolve_to_private_addresses_are_refused() -> None:
    strict = LnurlPayResolver(timeout_seconds=1.0)
    with pytest.raises(LnurlRefused, match="non-public"):
        strict._url("https://localhost/.well-known/lnurlp/alice")
    with pytest.raises(LnurlRefused, match="must be https"):
        strict._url("http://example.com/.well-known/lnurlp/alice")


def test_the_resolver_comes_from_the_settings() -> None:
    made = LnurlPayResolver.from_settings(Settings.from_environment({"LNURL_TIMEOUT_SECONDS": "3", "LNURL_ALLOW_LOCAL": "true"}))
    assert (made.timeout_seconds, made.allow_local) == (3.0, True)
    assert LnurlPayResolver.from_settings(Settings()).allow_local is False
