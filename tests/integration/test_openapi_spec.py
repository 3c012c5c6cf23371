"""The OpenAPI document describes the API as it answers: errors in the contract's shape (400, not
Powertools' 422), the three ways to authenticate, and Idempotency-Key on POST routes."""

from __future__ import annotations

import json
import re

import pytest

from tests.api_client import ApiClient


def test_the_spec_documents_the_contracts_errors_security_and_idempotency(api: ApiClient) -> None:
    spec = api.get("/api/openapi.json").json
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(spec["components"]["schemas"])
    assert set(spec["components"]["securitySchemes"]) == {"adminKey", "nostrToken", "nip98"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation["responses"].get("422", {}).get("description") != "Validation Error", (
                method,
                path,
            )  # Powertools' 422 is a 400
            assert {"400", "413", "503"} <= set(operation["responses"]), (method, path)
            for status, response in operation["responses"].items():
                if not status.startswith("2") and status != "default":
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                        method,
                        path,
                        status,
                    )
            if method == "post":
                assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"]), path
    for path in ("/api/jobs", "/api/sessions/{session_id}/request"):  # the evaluator's rejection (contract: 422) is documented
        assert spec["paths"][path]["post"]["responses"]["422"]["description"] == "the evaluator rejected the request", path
    assert spec["paths"]["/api/admin/audit"]["get"]["security"] == [{"adminKey": []}]
    assert {"nostrToken": []} in spec["paths"]["/api/estimate"]["get"]["security"]


def test_the_docs_page_embeds_the_finished_spec(api: ApiClient) -> None:
    page = api.get("/api/docs")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"securitySchemes" in page.body and b"HTTPValidationError" not in page.body


def test_the_spec_states_what_the_server_refuses(api: ApiClient) -> None:
    """Issue 14: the spec and the server disagreed on these; each is now stated where the server checks it."""
    spec = api.get("/api/openapi.json").json
    paths = spec["paths"]
    get_estimate = {p["name"]: p for p in paths["/api/estimate"]["get"]["parameters"]}
    assert get_estimate["request"]["required"] is True
    assert get_estimate["request"]["schema"]["minLength"] == 1 and get_estimate["request"]["schema"]["pattern"] == r"\S"
    assert "null" not in json.dumps(get_estimate["model"]["schema"])  # a query value is a string or absent
    body = spec["components"]["schemas"]["EstimateBody"]
    assert body["required"] == ["request"] and body["properties"]["request"]["minLength"] == 1
    pubkey = paths["/api/admin/identities/{pubkey}"]["put"]["parameters"][0]["schema"]
    assert re.fullmatch(pubkey["pattern"], "a" * 64) and re.fullmatch(pubkey["pattern"], "npub1" + "q" * 58)
    assert not re.fullmatch(pubkey["pattern"], "0") and not re.fullmatch(pubkey["pattern"], " " + "a" * 64)
    keys = [
        next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")["schema"]
        for operations in paths.values()
        for method, operation in operations.items()
        if method == "post"
    ]
    assert len(keys) >= 3 and all(key == keys[0] for key in keys)  # one definition on every POST route
    assert (keys[0]["minLength"], keys[0]["maxLength"]) == (1, 255)
    assert "409" in paths["/api/admin/pool/topup"]["post"]["responses"] and "409" in paths["/api/identity/token"]["post"]["responses"]
    assert paths["/api/admin/pool/topup"]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("PoolTopup")
    assert spec["components"]["schemas"]["PoolTopup"]["properties"]["amount_sats"]["type"] == "integer"


@pytest.mark.parametrize("length", [0, 256])
def test_every_post_route_refuses_the_same_idempotency_keys(api: ApiClient, length: int) -> None:
    # Issue 14: POST /api/estimate took a 300-character key the top-up refused.
    admin = {"authorization": "Bearer test-admin-key"}
    for path, body, headers in (("/api/estimate", {"request": "hi"}, {}), ("/api/admin/pool/topup", {"amount_sats": 5}, admin)):
        answer = api.post(path, json_body=body, headers={**headers, "idempotency-key": "k" * length})
        assert (answer.status, answer.error_code) == (400, "invalid_idempotency_key"), (path, answer.body)
    answer = api.post("/api/identity/token", headers={"idempotency-key": "k" * length})
    assert (answer.status, answer.error_code) == (400, "invalid_idempotency_key")
    assert api.post("/api/estimate", json_body={"request": "hi"}, headers={"idempotency-key": "k" * 255}).status == 200
