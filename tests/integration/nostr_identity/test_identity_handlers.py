"""The identity routes through their Lambda handlers (API Gateway v2 events) on DynamoDB Local."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.integration.estimate_http import http_event, invoke
from timmy.clock import FixedClock
from timmy.identity.signer import Keys, encode_nip98_header
from timmy_http.services import Services

BASE = "http://localhost"  # the helper's events come from host localhost without x-forwarded-proto
TOKEN_PATH = "/api/identity/token"
ADMIN = {"authorization": "Bearer test-admin-key"}


def token_for(handlers: dict[str, Any], keys: Keys, clock: FixedClock) -> dict[str, Any]:
    header = keys.nip98_header(BASE + TOKEN_PATH, "POST", created_at=int(clock.now()))
    status, body = invoke(handlers["identity"], http_event("POST", TOKEN_PATH, headers={"authorization": header}))
    assert status == 200, body
    return body


def me(handlers: dict[str, Any], authorization: str) -> tuple[int, dict[str, Any]]:
    return invoke(handlers["identity"], http_event("GET", "/api/identity/me", headers={"authorization": authorization}))


def test_nip98_in_token_out_and_me(handlers: dict[str, Any], fixed_services: Services, clock: FixedClock) -> None:
    keys = Keys.generate()
    issued = token_for(handlers, keys, clock)
    assert issued["pubkey"] == keys.pubkey and issued["tier"] == "new"
    assert issued["expires_at"].endswith("Z") and issued["token"].startswith("nt1.")
    status, body = me(handlers, f"Bearer {issued['token']}")
    assert status == 200, body
    assert body["pubkey"] == keys.pubkey and body["npub"] == keys.npub and body["tier"] == "new"
    assert (body["budget_sats"], body["absorbed_sats"], body["reserved_sats"], body["remaining_sats"]) == (0, 0, 0, 0)
    assert body["first_seen_at"] is not None
    # NIP-98 directly on /me works too, with a GET and no body.
    status, body = me(handlers, keys.nip98_header(BASE + "/api/identity/me", "GET", created_at=int(clock.now())))
    assert status == 200 and body["pubkey"] == keys.pubkey


def test_a_replayed_event_is_refused(handlers: dict[str, Any], fixed_services: Services, clock: FixedClock) -> None:
    keys = Keys.generate()
    header = keys.nip98_header(BASE + TOKEN_PATH, "POST", created_at=int(clock.now()))
    event = http_event("POST", TOKEN_PATH, headers={"authorization": header})
    assert invoke(handlers["identity"], dict(event))[0] == 200
    status, body = invoke(handlers["identity"], http_event("POST", TOKEN_PATH, headers={"authorization": header}))
    assert (status, body["error"]["code"]) == (401, "nip98_replayed")


def test_tampered_requests_are_refused_through_the_handler(handlers: dict[str, Any], fixed_services: Services, clock: FixedClock) -> None:
    keys = Keys.generate()
    now = int(clock.now())
    body_text = '{"request":"hello"}'
    cases = {
        "other path": (keys.nip98_header(BASE + "/api/identity/me", "POST", body_text.encode(), now), "nip98_url_mismatch"),
        "other host": (keys.nip98_header("http://evil.example" + TOKEN_PATH, "POST", body_text.encode(), now), "nip98_url_mismatch"),
        "https not http": (keys.nip98_header("https://localhost" + TOKEN_PATH, "POST", body_text.encode(), now), "nip98_url_mismatch"),
        "other query": (keys.nip98_header(BASE + TOKEN_PATH + "?x=1", "POST", body_text.encode(), now), "nip98_url_mismatch"),
        "method": (keys.nip98_header(BASE + TOKEN_PATH, "GET", body_text.encode(), now), "nip98_method_mismatch"),
        "payload": (keys.nip98_header(BASE + TOKEN_PATH, "POST", b'{"request":"other"}', now), "nip98_payload_mismatch"),
        "too old": (keys.nip98_header(BASE + TOKEN_PATH, "POST", body_text.encode(), now - 61), "nip98_expired"),
        "future": (keys.nip98_header(BASE + TOKEN_PATH, "POST", body_text.encode(), now + 61), "nip98_from_future"),
        "bad base64": ("Nostr %%%", "nip98_invalid_base64"),
        "a token on the token route": ("Bearer nt1.x.y.z.w", "nip98_required"),
        "basic auth": ("Basic dXNlcjpwYXNz", "unsupported_authorization"),
    }
    for name, (header, code) in cases.items():
        status, body = invoke(handlers["identity"], http_event("POST", TOKEN_PATH, body=body_text, headers={"authorization": header}))
        assert (name, status, body["error"]["code"]) == (name, 401, code)
    status, body = invoke(handlers["identity"], http_event("POST", TOKEN_PATH, body=body_text))
    assert (status, body["error"]["code"]) == (401, "missing_credentials")


def test_the_u_tag_carries_the_public_base_url_when_configured(
    handlers: dict[str, Any], fixed_services: Services, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timmy.config import get_settings
    from timmy_http.services import Services as ServicesClass
    from timmy_http.services import reset_services

    monkeypatch.setenv("PUBLIC_BASE_URL", "https://timmy.example.org/")
    get_settings.cache_clear()
    reset_services(ServicesClass(get_settings(), clock))
    keys = Keys.generate()
    good = keys.nip98_header("https://timmy.example.org/api/identity/me?a=b%20c", "GET", created_at=int(clock.now()))
    status, body = invoke(handlers["identity"], http_event("GET", "/api/identity/me", raw_query="a=b%20c", headers={"authorization": good}))
    assert status == 200, body
    local = keys.nip98_header(BASE + "/api/identity/me?a=b%20c", "GET", created_at=int(clock.now()))
    status, body = invoke(
        handlers["identity"], http_event("GET", "/api/identity/me", raw_query="a=b%20c", headers={"authorization": local})
    )
    assert (status, body["error"]["code"]) == (401, "nip98_url_mismatch")


def test_the_domain_api_gateway_asserts_gives_the_url_over_https(
    handlers: dict[str, Any], fixed_services: Services, clock: FixedClock
) -> None:
    keys = Keys.generate()
    header = keys.nip98_header("https://api.example.com/api/identity/me", "GET", created_at=int(clock.now()))
    event = http_event("GET", "/api/identity/me", headers={"authorization": header, "x-forwarded-proto": "http"})
    event["requestContext"]["domainName"] = "api.example.com"
    status, body = invoke(handlers["identity"], event)
    assert status == 200, body


def test_an_event_signed_for_another_service_is_refused_whatever_host_and_proto_say(
    handlers: dict[str, Any], fixed_services: Services, clock: FixedClock
) -> None:
    # Issue 14: with PUBLIC_BASE_URL unset, Host and X-Forwarded-Proto (written by the client) made
    # the expected URL, so an event signed for another service was accepted here.
    keys = Keys.generate()
    header = keys.nip98_header("https://other-service.example" + TOKEN_PATH, "POST", created_at=int(clock.now()))
    spoofed = {"authorization": header, "host": "other-service.example", "x-forwarded-proto": "https"}
    status, body = invoke(handlers["identity"], http_event("POST", TOKEN_PATH, headers=spoofed))
    assert (status, body["error"]["code"]) == (401, "nip98_url_mismatch")
    # As in AWS: API Gateway's own domain in requestContext, the client's headers saying otherwise.
    event = http_event("POST", TOKEN_PATH, headers=spoofed)
    event["requestContext"]["domainName"] = "abc123.execute-api.us-east-1.amazonaws.com"
    status, body = invoke(handlers["identity"], event)
    assert (status, body["error"]["code"]) == (401, "nip98_url_mismatch")


def test_bad_tokens_are_401_and_never_anonymous(
    handlers: dict[str, Any], fixed_services: Services, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from timmy.identity.tokens import TokenSigner

    keys = Keys.generate()
    issued = token_for(handlers, keys, clock)
    other_secret = TokenSigner("some-other-secret").issue(keys.pubkey, int(clock.now()) + 3600)
    forged = issued["token"].replace(keys.pubkey, Keys.generate().pubkey)
    for token, code in ((other_secret, "token_unknown_key"), (forged, "token_bad_signature"), ("garbage", "token_malformed")):
        status, body = me(handlers, f"Bearer {token}")
        assert (status, body["error"]["code"]) == (401, code)
    clock.advance(fixed_services.settings.token_ttl_seconds + 1)
    status, body = me(handlers, f"Bearer {issued['token']}")
    assert (status, body["error"]["code"]) == (401, "token_expired")
    if "estimate" in handlers:
        # The estimate accepts anonymous callers, yet a failing identity there is a 401, not anonymous.
        for query in ({"request": "hi", "nostr_token": forged}, {"request": "hi", "nostr_token": issued["token"]}):
            status, body = invoke(handlers["estimate"], http_event("GET", "/api/estimate", query=query))
            assert status == 401, body


def test_interop_a_nip98_header_made_by_nostr_sdk_is_accepted(handlers: dict[str, Any], table_name: str) -> None:
    nostr_sdk = pytest.importorskip("nostr_sdk")
    from timmy.config import get_settings
    from timmy_http.services import Services as ServicesClass
    from timmy_http.services import reset_services

    get_settings.cache_clear()
    reset_services(ServicesClass(get_settings()))  # the system clock: nostr-sdk stamps the real time
    try:
        keys = nostr_sdk.Keys.generate()
        body_text = '{"anything":"at all"}'
        data = nostr_sdk.HttpData(
            url=BASE + TOKEN_PATH, method=nostr_sdk.HttpMethod.POST, payload=hashlib.sha256(body_text.encode()).hexdigest()
        )
        event = nostr_sdk.EventBuilder.http_auth(data).sign_with_keys(keys)
        header = encode_nip98_header(__import__("json").loads(event.as_json()))
        status, body = invoke(handlers["identity"], http_event("POST", TOKEN_PATH, body=body_text, headers={"authorization": header}))
        assert status == 200, body
        assert body["pubkey"] == keys.public_key().to_hex()
        # And one built tag by tag, with an extra nonce tag, for a GET.
        tags = [["u", BASE + "/api/identity/me"], ["method", "GET"], ["nonce", "42"]]
        event = nostr_sdk.EventBuilder(nostr_sdk.Kind(27235), "").tags([nostr_sdk.Tag.parse(t) for t in tags]).sign_with_keys(keys)
        header = encode_nip98_header(__import__("json").loads(event.as_json()))
        status, body = me(handlers, header)
        assert status == 200 and body["npub"] == keys.public_key().to_bech32()
    finally:
        reset_services()
