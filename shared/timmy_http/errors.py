"""The contract's error shape, `{"error": {"code", "message"}}`, mapped once for every resolver."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from timmy.errors import PaymentRequired, TimmyError
from timmy_http.event_handler import (
    APIGatewayHttpResolver,
    NotFoundError,
    RequestUnsupportedContentType,
    RequestValidationError,
    Response,
    content_types,
)
from timmy_http.observability import logger, metrics

MESSAGE_CHARS_MAX = 200  # a message says what to fix in a sentence; never a dump of the input
FIELD_CHARS_MAX = 40  # a field name the client wrote (an unknown one) is shown up to this length
PROBLEMS_SHOWN_MAX = 3  # a body wrong in many ways is described by its first few problems


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    """The contract's error shape, the one builder of it: `{"error": {"code", "message", **details}}`,
    the message cut to MESSAGE_CHARS_MAX characters."""
    if len(message) > MESSAGE_CHARS_MAX:
        message = message[: MESSAGE_CHARS_MAX - 1] + "…"
    return {"error": {"code": code, "message": message, **details}}


def error_response(status_code: int, code: str, message: str, headers: dict[str, str] | None = None, **details: Any) -> Response:
    """A resolver Response in the contract's error shape; `details` (the known models, …) go inside `error`."""
    body = json.dumps(error_body(code, message, **details))
    return Response(status_code=status_code, content_type=content_types.APPLICATION_JSON, body=body, headers=headers or {})


def error_result(status_code: int, code: str, message: str) -> dict[str, Any]:
    """An API Gateway v2 result in the contract's error shape, for refusals made before the resolver runs."""
    return {
        "statusCode": status_code,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(error_body(code, message)),
        "isBase64Encoded": False,
    }


# What each kind of validation failure means, in the product's words (pydantic's error types;
# `{name}` is filled from the error's context). Never pydantic's own text, never the input's value.
_PROBLEMS = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this request",
    "string_type": "must be text",
    "string_unicode": "must be valid UTF-8 text",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "is too large a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "greater_than": "must be more than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "string_pattern_mismatch": "does not have the expected form (see the API's spec)",
    "enum": "must be one of: {expected}",
    "literal_error": "must be one of: {expected}",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
    "json_invalid": "is not valid JSON",
    "not_null": "may be left out but not null",
}


def describe_validation_errors(errors: Any) -> str:
    """One sentence naming the fields that failed and why, in the product's words (see _PROBLEMS)."""
    parts = []
    for error in errors:
        location = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
        field = ".".join(location)
        subject = "the body" if not field else f"'{field[:FIELD_CHARS_MAX]}'" + ("…" if len(field) > FIELD_CHARS_MAX else "")
        problem = _PROBLEMS.get(str(error.get("type", "")), "is not valid")
        if tuple(error.get("loc", ()))[:1] == ("query",) and isinstance(error.get("input"), list):
            problem = "is given more than once: send it once"  # a repeated query parameter arrives as a list
        try:
            problem = problem.format(**(error.get("ctx") or {}))
        except (KeyError, IndexError, ValueError):
            problem = "is not valid"
        part = f"{subject} {problem}"
        if part not in parts:
            parts.append(part)
    if not parts:
        return "the request is not valid"
    more = len(parts) - PROBLEMS_SHOWN_MAX
    sentence = "; ".join(parts[:PROBLEMS_SHOWN_MAX])
    return f"{sentence}; and {more} more" if more > 0 else sentence


def register_error_handlers(app: APIGatewayHttpResolver, known_routes: Any = None) -> None:
    """Map every error a route can raise to the contract's error shape (never a stack trace)."""

    @app.exception_handler(TimmyError)
    def _timmy_error(error: TimmyError) -> Response:
        metrics.add_metric(name=f"Error_{error.code}", unit="Count", value=1)
        details = dict(error.details)
        if isinstance(error, PaymentRequired) and error.invoice is not None:  # a 402 carries its invoice
            from timmy_http.invoices import invoice_view  # here: only a 402 renders one

            details["invoice"] = invoice_view(error.invoice)
        return error_response(error.status_code, error.code, error.message, **details)

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
