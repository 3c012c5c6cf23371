"""API Gateway HTTP API (payload v2) events for invoking handlers directly, and reading answers."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote

from local.gateway import Router, build_event, routes_from
from local.handlers import function_specs


class LambdaContext:
    function_name = "test"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:test"
    aws_request_id = "test-request"


_ROUTER = Router(routes_from(function_specs()))


def http_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    raw_query: str | None = None,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The API Gateway v2 event the local gateway would build (routed by template.yaml), JSON by default."""
    if raw_query is None:
        raw_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in (query or {}).items())
    merged = {"host": "localhost", "content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}}
    route, path_parameters = _ROUTER.resolve(method, path)
    return build_event(
        method=method,
        target=f"{path}?{raw_query}" if raw_query else path,
        headers=list(merged.items()),
        body=body.encode("utf-8", errors="surrogatepass") if isinstance(body, str) else (body or b""),
        route=route,
        path_parameters=path_parameters,
        host="localhost",
    )


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Call a Lambda handler; answers (status, parsed JSON body)."""
    response = handler(event, LambdaContext())
    body = response.get("body") or "null"
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return response["statusCode"], json.loads(body)
