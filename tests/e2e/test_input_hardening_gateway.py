"""Issue 14's reproductions through the local gateway's socket, as a client sends them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_input_hardening import ADMIN, BODY_ROUTES, JSON_SPELLINGS, NOT_JSON
from timmy.identity.signer import Keys


def test_json_in_any_letter_case_is_json_and_other_types_are_a_400(stack: Any) -> None:
    for method, path, body, headers in BODY_ROUTES:
        for content_type in JSON_SPELLINGS:
            answer = stack.request(method, path, body=body, headers={**headers, "content-type": content_type})
            assert answer.status == 200, (path, content_type, answer.body)
        for content_type in NOT_JSON:
            for sent in (headers, {}):
                answer = stack.request(method, path, body=b"", headers={**sent, "content-type": content_type})
                assert answer.status == 400, (path, content_type, answer.body)
                assert answer.json()["error"]["code"] == "unsupported_content_type"


@pytest.mark.parametrize("sent", [ADMIN, {}])
def test_no_5xx_for_any_content_type_on_a_body_route(stack: Any, sent: dict[str, str]) -> None:
    odd = ["", ";", "application/json; charset", "APPLICATION/JSON ;", "*/*", "application/json, text/plain", "x" * 4_000]
    for method, path, body, _ in BODY_ROUTES:
        for content_type in odd:
            for payload in (body, ""):
                answer = stack.request(method, path, body=payload, headers={**sent, "content-type": content_type})
                assert answer.status < 500, (path, content_type, payload, answer.body)
                assert len(answer.body) < 1_000


def test_a_nip98_event_signed_for_another_service_is_refused_whatever_host_and_proto_say(stack: Any) -> None:
    # Issue 14: with PUBLIC_BASE_URL unset, `Host: other-service.example` and `X-Forwarded-Proto:
    # https` made the expected URL, so this replay got a token.
    keys = Keys.generate()
    foreign = keys.nip98_header("https://other-service.example/api/identity/token", "POST")
    spoofed = {"authorization": foreign, "host": "other-service.example", "x-forwarded-proto": "https"}
    answer = stack.request("POST", "/api/identity/token", headers=spoofed)
    assert (answer.status, answer.json()["error"]["code"]) == (401, "nip98_url_mismatch")
    assert f"http://127.0.0.1:{stack.gateway.port}/api/identity/token" in answer.json()["error"]["message"]
    for host in (f"127.0.0.1:{stack.gateway.port}", f"localhost:{stack.gateway.port}"):  # the gateway's own names
        own = keys.nip98_header(f"http://{host}/api/identity/token", "POST")
        answer = stack.request("POST", "/api/identity/token", headers={"authorization": own, "host": host, "x-forwarded-proto": "https"})
        assert answer.status == 200, (host, answer.body)
