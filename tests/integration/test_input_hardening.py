"""Issue 14's reproductions through the in-process API (template routing, real handlers, DynamoDB
Local): content types, the NIP-98 expected URL, messages. The same cases through a socket are in
tests/e2e/test_input_hardening.py."""

from __future__ import annotations

import pytest

from tests.api_client import ApiClient

ADMIN = {"authorization": "Bearer test-admin-key"}
PUBKEY = "a" * 64
BODY_ROUTES = [
    ("POST", "/api/estimate", '{"request": "hi"}', {}),
    ("POST", "/api/admin/pool/topup", '{"amount_sats": 5}', ADMIN),
    ("PUT", f"/api/admin/identities/{PUBKEY}", '{"tier": "trusted"}', ADMIN),
]
JSON_SPELLINGS = ["APPLICATION/JSON", "Application/Json", "application/JSON; charset=utf-8", "application/json;charset=UTF-8"]
NOT_JSON = ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded", "Text/Plain; charset=utf-8"]


@pytest.mark.parametrize("content_type", JSON_SPELLINGS)
def test_json_in_any_letter_case_is_json(api: ApiClient, content_type: str) -> None:
    for method, path, body, headers in BODY_ROUTES:
        answer = api.request(method, path, body=body, headers={**headers, "content-type": content_type})
        assert answer.status == 200, (path, answer.body)
        refused = api.request(method, path, body=body, headers={"content-type": content_type})
        assert refused.status == (200 if not headers else 401), (path, refused.body)


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_an_empty_body_of_another_type_is_a_400_on_every_body_route_with_or_without_the_key(api: ApiClient, content_type: str) -> None:
    for method, path, _, headers in BODY_ROUTES:
        for sent in (headers, {}):
            answer = api.request(method, path, body=b"", headers={**sent, "content-type": content_type})
            assert (answer.status, answer.error_code) == (400, "unsupported_content_type"), (path, sent, answer.body)
            assert set(answer.json["error"]) == {"code", "message"}
            assert "application/json" in answer.json["error"]["message"]
    assert api.get("/api/pool").json["balance_sats"] == 10_000


def test_a_route_without_a_body_model_ignores_the_type_of_an_empty_body(api: ApiClient) -> None:
    # `curl -X POST -d ''` sends an empty form: the token route reads no body, so it answers on the credentials.
    answer = api.post("/api/identity/token", body=b"", headers={"content-type": "application/x-www-form-urlencoded"})
    assert (answer.status, answer.error_code) == (401, "missing_credentials")
    assert api.get("/api/pool", headers={"content-type": "text/plain"}).status == 200
