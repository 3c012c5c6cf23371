"""The contract's error shape, `{"error": {"code", "message"}}`, mapped once for every resolver."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from botocore.exceptions import BotoCoreError, ClientError

from timmy.errors import TimmyError
from timmy_http.observability import logger, metrics


def error_response(status_code: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any) -> Response:
    """A Response in the contract's error shape; `details` (the known models, …) go inside `error`."""
    body: dict[str, Any] = {"error": {"code": code, "message": message, **details}}
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON, body=json.dumps(body), headers=headers or {})


def describe_validation_errors(errors: Any) -> str:
    """One human sentence naming each field that failed and why."""
    parts = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
        kind = error.get("type", "")
        if kind == "json_invalid":
            parts.append("the body is not valid JSON")
            continue
        field = ".".join(location) or "request"
        if kind == "missing":
            parts.append(f"'{field}' is required")
        else:
            parts.append(f"'{field}': {error.get('msg', 'is invalid')}")
    return "; ".join(parts) or "the request is invalid"


def register_error_handlers(app: APIGatewayHttpResolver, known_routes: Any = None) -> None:
    """Map every error a route can raise to the contract's error shape (never a stack trace)."""

    @app.exception_handler(TimmyError)
    def _timmy_error(error: TimmyError) -> Response:
        metrics.add_metric(name=f"Error_{error.code}", unit="Count", value=1)
        return error_response(error.status_code, error.code, error.message, **error.details)

    @app.exception_handler(RequestValidationError)
    def _validation_error(error: RequestValidationError) -> Response:
        errors = error.errors()
        code = "invalid_json" if any(e.get("type") == "json_invalid" for e in errors) else "invalid_input"
        return error_response(400, code, describe_validation_errors(errors))

    @app.exception_handler(RequestUnsupportedContentType)
    def _not_json(_error: RequestUnsupportedContentType) -> Response:
        # guard_body refuses these first; this keeps a route the guard does not know from a 500.
        return error_response(400, "unsupported_content_type", "send the body as JSON with 'content-type: application/json'")

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(_error: UnicodeDecodeError) -> Response:
        return error_response(400, "invalid_encoding", "the body must be UTF-8 encoded JSON")

    @app.not_found
    def _not_found(_error: NotFoundError) -> Response:
        method = app.current_event.http_method.upper()
        path = app.current_event.path
        allowed = known_routes.methods_for(path) if known_routes is not None else set()
        if allowed and method not in allowed:
            return error_response(
                405,
                "method_not_allowed",
                f"{method} is not allowed on {path}; use {', '.join(sorted(allowed))}",
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        return error_response(404, "not_found", f"no route {method} {path}")

    @app.exception_handler([BotoCoreError, ClientError])
    def _dependency_down(error: Exception) -> Response:
        # DynamoDB, SQS or Secrets Manager refused or did not answer: the caller may retry.
        logger.exception("AWS dependency failed", extra={"error_type": type(error).__name__})
        metrics.add_metric(name="DependencyUnavailable", unit="Count", value=1)
        return error_response(503, "dependency_unavailable", "a storage or queue service did not answer; retry shortly")

    @app.exception_handler(Exception)
    def _unexpected(error: Exception) -> Response:
        logger.exception("unexpected error", extra={"error_type": type(error).__name__})
        metrics.add_metric(name="UnexpectedError", unit="Count", value=1)
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")
