"""The OpenAPI document describes the API as it answers: errors in the contract's shape (400, not
Powertools' 422), the three ways to authenticate, and Idempotency-Key on POST routes."""

from __future__ import annotations

from tests.api_client import ApiClient


def test_the_spec_documents_the_contracts_errors_security_and_idempotency(api: ApiClient) -> None:
    spec = api.get("/api/openapi.json").json
    assert spec["components"]["schemas"]["Error"]["required"] == ["error"]
    assert {"HTTPValidationError", "ValidationError"}.isdisjoint(spec["components"]["schemas"])
    assert set(spec["components"]["securitySchemes"]) == {"adminKey", "nostrToken", "nip98"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if not status.startswith("2") and status != "default":
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}, (
                        method,
                        path,
                        status,
                    )
            if method == "post":
                assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"]), path
    assert spec["paths"]["/api/admin/audit"]["get"]["security"] == [{"adminKey": []}]
    assert {"nostrToken": []} in spec["paths"]["/api/estimate"]["get"]["security"]


def test_the_docs_page_embeds_the_finished_spec(api: ApiClient) -> None:
    page = api.get("/api/docs")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert b"securitySchemes" in page.body and b"HTTPValidationError" not in page.body
