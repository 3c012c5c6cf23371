"""Resolver set-up shared by every HTTP function: validation and OpenAPI on, the error shape
mapped once, the body guarded before anything parses it, Logger/Metrics/Tracer on the handler."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from timmy.config import get_settings
from timmy_http.errors import error_result, register_error_handlers
from timmy_http.event_handler import APIGatewayHttpResolver
from timmy_http.idempotency import idempotency_key_problem
from timmy_http.observability import logger, metrics, tracer

JSON_CONTENT_TYPE = "application/json"


def create_app(known_routes: Any = None) -> APIGatewayHttpResolver:
    """A resolver with validation (pydantic models, OpenAPI) and the contract's error mapping."""
    app = APIGatewayHttpResolver(enable_validation=True)
    register_error_handlers(app, known_routes)
    return app


def guard_body(event: dict[str, Any], body_routes: Callable[[], frozenset[str]] = frozenset) -> dict[str, Any] | None:
    """The contract's answer for a body too large (413), not UTF-8 or not JSON (400), sent as
    another media type than JSON (400), or a malformed Idempotency-Key on a POST route (400),
    before any parsing.

    `body_routes` names the route keys (`POST /api/estimate`) whose handler takes a JSON body: a
    non-JSON type is refused there even on an empty body. Returns an API Gateway v2 response to
    send instead, or None when the body is acceptable.
    """
    if str(event.get("routeKey", "")).startswith("POST "):
        key_problem = idempotency_key_problem(event.get("headers") or {})
        if key_problem is not None:
            return error_result(400, "invalid_idempotency_key", key_problem)
    body = event.get("body")
    media_type = _normalise_content_type(event)
    if media_type and media_type != JSON_CONTENT_TYPE and (body or event.get("routeKey") in body_routes()):
        return error_result(400, "unsupported_content_type", f"send the body as JSON with 'content-type: {JSON_CONTENT_TYPE}'")
    if not body:
        return None
    limit = get_settings().max_body_bytes
    raw: bytes
    if event.get("isBase64Encoded"):
        if len(body) * 3 // 4 > limit + 3:
            return _too_large(limit)
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return error_result(400, "invalid_encoding", "the body is marked base64 but does not decode")
    else:
        raw = body.encode("utf-8", errors="surrogatepass")
    if len(raw) > limit:
        return _too_large(limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return error_result(400, "invalid_encoding", "the body must be UTF-8 encoded JSON")
    problem = _json_problem(text)
    if problem is not None:
        return error_result(400, "invalid_json", problem)
    if event.get("isBase64Encoded"):
        # Hand the resolver plain text from here on: it decodes base64 bodies itself otherwise.
        event["body"], event["isBase64Encoded"] = text, False
    return None


def _json_problem(text: str) -> str | None:
    """What is wrong with a body that is not JSON, in the product's words (never the parser's)."""
    try:
        json.loads(text)
    except RecursionError:
        return "the body's JSON is nested too deeply"
    except json.JSONDecodeError as error:
        if text.startswith("\ufeff"):
            return "the body is not valid JSON: it starts with a byte order mark; send UTF-8 without one"
        return f"the body is not valid JSON (line {error.lineno}, column {error.colno})"
    except ValueError:  # an integer of more digits than Python converts
        return f"the body holds a number of more than {sys.get_int_max_str_digits()} digits"
    return None


def _normalise_content_type(event: dict[str, Any]) -> str:
    """The request's media type, lower case; the event's header lower-cased too.

    Media types are case-insensitive (RFC 9110) but the framework's validation compares the
    header as written: `APPLICATION/JSON` would reach it as an unknown type.
    """
    headers = event.get("headers") or {}
    value = headers.get("content-type")
    if not isinstance(value, str):
        return ""
    headers["content-type"] = value.strip().lower()
    return headers["content-type"].split(";", 1)[0].strip()


def _too_large(limit: int) -> dict[str, Any]:
    return error_result(413, "payload_too_large", f"the body is over the limit of {limit} bytes")


def lambda_handler_for(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point of a resolver: two lines in each function's app.py use it."""

    @cache
    def body_routes() -> frozenset[str]:
        # Read from the resolver's own spec, once, and only when a non-JSON type arrives on an
        # empty body: the spec is not built on the common path (cold start).
        return frozenset(
            f"{method.upper()} {path}"
            for path, operations in app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True).get("paths", {}).items()
            for method, operation in operations.items()
            if isinstance(operation, dict) and "requestBody" in operation
        )

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        refusal = guard_body(event, body_routes)
        if refusal is not None:
            return refusal
        return app.resolve(event, context)

    return handler
