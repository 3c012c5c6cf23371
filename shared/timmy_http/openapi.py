"""The finishing touches on the merged OpenAPI spec, so it describes the API as it answers.

Powertools documents every validated route with a 422 `HTTPValidationError`; Timmy answers bad
input with a 400 in the contract's error shape. This adds that shape as a schema, gives every
error response it, documents `Idempotency-Key` on POST routes and the three ways to authenticate.
"""

from __future__ import annotations

import copy
import json
from enum import Enum
from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "snake_case, stable: what went wrong", "examples": ["invalid_input"]},
                "message": {"type": "string", "description": "a human sentence saying what to fix"},
            },
        }
    },
}
SECURITY_SCHEMES = {
    "adminKey": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <ADMIN_API_KEY>"},
    "nostrToken": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <nostr_token> from POST /api/identity/token"},
    "nip98": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "Nostr <base64 of a signed kind-27235 event> (NIP-98): u, method and payload tags, created_at within 60 s",
    },
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "maxLength": 255},
    "description": "a retry with the same key (and the same body) gets the first answer back",
}
_ERROR_RESPONSE = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_SECURITY_BY_PREFIX: tuple[tuple[str, list[dict[str, list[str]]]], ...] = (
    ("/api/admin/", [{"adminKey": []}]),
    ("/api/identity/token", [{"nip98": []}]),
    ("/api/identity/", [{"nip98": []}, {"nostrToken": []}]),
    ("/api/estimate", [{}, {"nip98": []}, {"nostrToken": []}]),
)


def finish_spec(merged: dict[str, Any]) -> dict[str, Any]:
    """A copy of `merged` with the contract's error shape, security and Idempotency-Key."""
    spec = json.loads(json.dumps(merged, default=_plain))  # a copy, with the merge's enums as their values
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            _finish_operation(path, method, operation)
    return spec


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


def _finish_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    # Status keys arrive as ints or strings depending on the function's spec: make them strings.
    responses = {str(status): response for status, response in operation.get("responses", {}).items()}
    operation["responses"] = responses
    invalid = responses.pop("422", None)
    if invalid is not None and "400" not in responses:
        responses["400"] = {"description": "Invalid input: the message says what to fix"}
    for status, response in responses.items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if not status.startswith("2") and "$ref" not in schema and "properties" not in schema:
            response.update(copy.deepcopy(_ERROR_RESPONSE))  # a route's own error model would be kept
    security = next((rule for prefix, rule in _SECURITY_BY_PREFIX if path.startswith(prefix)), None)
    if security is not None:
        operation["security"] = security
        responses.setdefault("401", {"description": "Missing or invalid credentials", **copy.deepcopy(_ERROR_RESPONSE)})
    if method == "post":
        operation.setdefault("parameters", []).append(dict(IDEMPOTENCY_KEY))
