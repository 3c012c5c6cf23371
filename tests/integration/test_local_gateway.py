"""The local gateway builds the events API Gateway would: they parse as Powertools' v2 model."""

from __future__ import annotations

import base64
import os
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from local.gateway import Gateway, compile_path, routes_from
from local.handlers import FunctionSpec, HandlerLoader, LambdaContext, function_specs


class CapturingLoader:
    """The template's routes, with a handler that keeps the event and echoes a response."""

    def __init__(self) -> None:
        self.specs = function_specs()
        self.events: list[dict[str, Any]] = []

    def invoke(self, logical_id: str, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append({"function": logical_id, **event})
        return {"statusCode": 201, "headers": {"content-type": "text/plain", "x-seen": logical_id}, "cookies": ["a=1", "b=2"], "body": "ok"}


def send(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    connection = HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request(method, path, body=body or None, headers=headers or {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def test_events_parse_as_api_gateway_v2_and_route_like_the_template() -> None:
    loader = CapturingLoader()
    gateway = Gateway(0, loader).start()  # type: ignore[arg-type]
    try:
        pubkey = "ab" * 32
        response = send(
            gateway.port,
            "PUT",
            f"/api/admin/identities/{pubkey}?x=1&x=2&empty=",
            b'{"tier": "trusted"}',
            {"Content-Type": "application/json", "Cookie": "session=abc; theme=dark", "X-Custom": "Yes", "User-Agent": "pytest"},
        )
        assert response.status == 201 and response.getheader("x-seen") == "AdminFunction"
        assert response.headers.get_all("set-cookie") == ["a=1", "b=2"]
        send(gateway.port, "POST", "/api/estimate", b"\xff\xfe\x00binary", {"Content-Type": "application/octet-stream"})
        send(gateway.port, "PATCH", "/api/unknown/thing")
    finally:
        gateway.stop()

    put, binary, fallback = loader.events
    for event in (put, binary, fallback):
        model = APIGatewayProxyEventV2Model.model_validate({k: v for k, v in event.items() if k != "function"})
        assert model.version == "2.0" and model.requestContext.stage == "$default"
        assert model.requestContext.http.sourceIp is not None and model.requestContext.requestId
        assert abs(model.requestContext.timeEpoch.timestamp() - time.time()) < 60
    assert put["function"] == "AdminFunction" and put["routeKey"] == "PUT /api/admin/identities/{pubkey}"
    assert put["requestContext"]["routeKey"] == put["routeKey"]
    assert put["pathParameters"] == {"pubkey": pubkey}
    assert put["rawPath"] == f"/api/admin/identities/{pubkey}" and put["rawQueryString"] == "x=1&x=2&empty="
    assert put["queryStringParameters"] == {"x": "1,2", "empty": ""}
    assert put["cookies"] == ["session=abc", "theme=dark"] and "cookie" not in put["headers"]
    assert put["headers"]["x-custom"] == "Yes" and all(k == k.lower() for k in put["headers"])
    assert put["requestContext"]["http"] == {
        "method": "PUT",
        "path": put["rawPath"],
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "pytest",
    }
    assert put["body"] == '{"tier": "trusted"}' and put["isBase64Encoded"] is False
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\xff\xfe\x00binary"
    assert fallback["function"] == "MetaFunction" and fallback["routeKey"] == "$default"


def test_route_matching_follows_api_gateway_rules() -> None:
    assert compile_path("/api/jobs/{job_id}").fullmatch("/api/jobs/j-1")
    assert not compile_path("/api/jobs/{job_id}").fullmatch("/api/jobs/j-1/refund")
    assert compile_path("/files/{path+}").fullmatch("/files/a/b/c")
    routes = routes_from(function_specs())
    assert routes[-1].path == "$default"  # the catch-all comes last


def test_lambda_context_carries_what_powertools_reads() -> None:
    spec = function_specs()["MetaFunction"]
    context = LambdaContext(spec)
    assert context.function_name == "MetaFunction" and context.memory_limit_in_mb == spec.memory_mb
    assert context.invoked_function_arn.endswith(":function:MetaFunction") and context.aws_request_id
    assert 0 < context.get_remaining_time_in_millis() <= spec.timeout_seconds * 1000


def test_code_changes_are_picked_up_without_a_restart(tmp_path: Path, monkeypatch: Any) -> None:
    app = tmp_path / "app.py"
    app.write_text("def handler(event, context):\n    return {'statusCode': 200, 'body': 'v1'}\n")
    spec = FunctionSpec("EchoFunction", app, "handler", timeout_seconds=3, memory_mb=128)
    monkeypatch.setattr("local.handlers.WATCHED_DIRS", (tmp_path,))
    monkeypatch.setattr("local.handlers.RELOADED_PACKAGES", ())  # keep this process's timmy modules
    loader = HandlerLoader({"EchoFunction": spec}, watch=True)
    assert loader.invoke("EchoFunction", {})["body"] == "v1"
    app.write_text("def handler(event, context):\n    return {'statusCode': 200, 'body': 'v2'}\n")
    stat = app.stat()
    os.utime(app, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert loader.invoke("EchoFunction", {})["body"] == "v2"
    assert loader.reloads == 1
