"""Calling the API as API Gateway would, in process: the local gateway's routing (by template.yaml),
its API Gateway v2 events and the real handlers — no socket in between."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from local.gateway import Gateway
from local.handlers import HandlerLoader


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return str(self.json["error"]["code"])


class ApiClient:
    def __init__(self) -> None:
        self.gateway = Gateway(0, HandlerLoader(watch=False))
        self.gateway.server.server_close()  # routing and invoking only; nothing listens
        self.gateway.port = 3000  # the address its requests say they reached (Host: 127.0.0.1:3000)

    def request(
        self, method: str, target: str, *, json_body: Any = None, body: bytes | str | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        raw = json.dumps(json_body).encode() if json_body is not None else body.encode() if isinstance(body, str) else (body or b"")
        header_list = [("host", "127.0.0.1:3000"), *((k, v) for k, v in (headers or {}).items())]
        if raw and not any(k.lower() == "content-type" for k, _ in header_list):
            header_list.append(("content-type", "application/json"))
        status, answer_headers, answer_body = self.gateway.handle(method, target, header_list, raw, "127.0.0.1")
        return Answer(status, {k.lower(): v for k, v in answer_headers}, answer_body)

    def get(self, target: str, **kwargs: Any) -> Answer:
        return self.request("GET", target, **kwargs)

    def post(self, target: str, **kwargs: Any) -> Answer:
        return self.request("POST", target, **kwargs)

    def put(self, target: str, **kwargs: Any) -> Answer:
        return self.request("PUT", target, **kwargs)
