"""The finishing touches on the merged OpenAPI spec, so it describes the API as it answers.

Powertools documents every validated route with a 422 `HTTPValidationError`; Timmy answers bad
input with a 400 in the contract's error shape. This adds that shape as a schema, documents every
error status a route answers (those of every route, and those the route declares with `errors()`)
with it, `Idempotency-Key` on POST routes and the three ways to authenticate.
"""

from __future__ import annotations

import copy
import json
from enum import Enum
from typing import Any

from timmy_http.idempotency import IDEMPOTENCY_KEY_PARAMETER

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


# What each error status means on any route; a route lists the ones only it can answer with
# `openapi_extensions=errors(409, ...)`, and every route gets those its handler answers anyway.
ERROR_DESCRIPTIONS = {
    "400": "invalid input (the spec's shape, a malformed header or body): the message says what to fix",
    "401": "missing or invalid credentials",
    "402": "payment required: the body carries the invoice",
    "403": "not allowed for these credentials",
    "404": "not found: the message names what",
    "409": "a conflict: this Idempotency-Key was used with another body or its first request is still running, or the state does not allow it",
    "413": "too large: the body, or the request for the model chosen (its context window, its output cap)",
    "422": "well formed but naming nothing that can exist (a pubkey off the curve, a cursor never given out)",
    "429": "rate limited: the message says what must happen first (unpaid jobs paid or expired)",
    "503": "a dependency (storage, a queue, the price) did not answer: retry shortly",
}
EVERY_ROUTE_ERRORS = ("400", "413", "503")  # the guard (body, content type, Idempotency-Key) and an unavailable dependency
ERRORS_EXTENSION = "x-timmy-errors"


def errors(*statuses: int) -> dict[str, Any]:
    """A route's `openapi_extensions`: the error statuses it answers beyond every route's."""
    unknown = [status for status in statuses if str(status) not in ERROR_DESCRIPTIONS]
    if unknown:
        raise ValueError(f"no description of the error statuses {unknown}: add them to ERROR_DESCRIPTIONS")
    return {ERRORS_EXTENSION: [str(status) for status in statuses]}


def _finish_operation(path: str, method: str, operation: dict[str, Any]) -> None:
    # Status keys arrive as ints or strings depending on the function's spec: make them strings.
    responses = {str(status): response for status, response in operation.get("responses", {}).items()}
    operation["responses"] = responses
    if _is_validation_error(responses.get("422")):
        del responses["422"]  # Powertools' validation error: Timmy answers it as a 400 (a route's own 422 stays)
    declared = [str(status) for status in operation.pop(ERRORS_EXTENSION, [])]
    security = next((rule for prefix, rule in _SECURITY_BY_PREFIX if path.startswith(prefix)), None)
    if security is not None:
        operation["security"] = security
        declared.append("401")
    for status in (*EVERY_ROUTE_ERRORS, *declared):
        responses.setdefault(status, {"description": ERROR_DESCRIPTIONS[status]})
    for status, response in responses.items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if not status.startswith("2") and "$ref" not in schema and "properties" not in schema:
            response.update(copy.deepcopy(_ERROR_RESPONSE))  # a route's own error model would be kept
    for parameter in operation.get("parameters", []):
        parameter["schema"] = _not_null(parameter.get("schema", {}))
    if method == "post":
        operation.setdefault("parameters", []).append(copy.deepcopy(IDEMPOTENCY_KEY_PARAMETER))
    operation["responses"] = dict(sorted(responses.items()))


def _is_validation_error(response: dict[str, Any] | None) -> bool:
    """Whether a 422 is the one Powertools adds to every validated route (`HTTPValidationError`),
    not one the route declares itself (the evaluator's rejection of a job or a session request)."""
    if response is None:
        return False
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return response.get("description") == "Validation Error" or str(schema.get("$ref", "")).endswith("/HTTPValidationError")


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter's schema without the `null` branch pydantic gives `X | None`: a query, path or
    header value is a string or absent, never JSON null."""
    branches = [branch for branch in schema.get("anyOf", []) if branch != {"type": "null"}]
    if "anyOf" not in schema or len(branches) != 1:
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**branches[0], **rest}
