"""API Gateway HTTP API (payload v2) events for invoking handlers directly, and reading answers."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:test"
    aws_request_id = "test-request"


def http_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    raw_query: str | None = None,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway v2 event; bytes bodies are sent base64-encoded, as API Gateway does for binary."""
    if raw_query is None:
        raw_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in (query or {}).items())
    params = dict(parse_qsl(raw_query, keep_blank_values=True, errors="replace")) if raw_query else None
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {"host": "localhost", "content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": "localhost",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": uuid.uuid4().hex,
            "routeKey": f"{method} {path}",
            "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000",
            "timeEpoch": 1767225600000,
        },
        "isBase64Encoded": False,
    }
    if params is not None:
        event["queryStringParameters"] = params
    if isinstance(body, bytes):
        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
    elif body is not None:
        event["body"] = body
    return event


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Call a Lambda handler; answers (status, parsed JSON body)."""
    response = handler(event, LambdaContext())
    body = response.get("body") or "null"
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return response["statusCode"], json.loads(body)
