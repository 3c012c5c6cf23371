"""Fake OpenAI chat-completions and Anthropic messages APIs on free local ports.

They answer in the APIs' own shapes: OpenAI `{"id", "object": "chat.completion", "choices":
[{"message": {"role", "content", "refusal"}, "finish_reason"}], "usage": {"prompt_tokens",
"completion_tokens", "total_tokens"}}` and errors `{"error": {"message", "type", "param", "code"}}`;
Anthropic `{"id", "type": "message", "role", "content": [{"type": "text", "text"}], "stop_reason",
"usage": {"input_tokens", "output_tokens"}}` and errors `{"type": "error", "error": {"type",
"message"}}`, 429 with `retry-after`, 529 `overloaded_error`. A fake token is one word; the answer
honours the output cap it is sent (`finish_reason: "length"` / `stop_reason: "max_tokens"`).

`mode` switches the next answers: ok, empty, rate_limited, overloaded, server_error, bad_key,
bad_request, garbage, no_usage, hang (until `release`d or closed), drip (the body a byte at a time).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER_WORDS = 40  # the fake model's natural answer length, in (fake) tokens
HANG_SECONDS_MAX = 10.0
DRIP_INTERVAL_SECONDS = 0.02


def fake_tokens(text: str) -> int:
    return len(text.split())


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with fake.lock:
            fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        try:
            status, headers, answer = fake.answer(self.path, body)
            if fake.mode == "hang":
                fake.release.wait(HANG_SECONDS_MAX)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(answer)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            if fake.mode == "drip":
                for index in range(len(answer)):
                    self.wfile.write(answer[index : index + 1])
                    self.wfile.flush()
                    time.sleep(DRIP_INTERVAL_SECONDS)
            else:
                self.wfile.write(answer)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test): expected

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: _FakeProvider


class _FakeProvider:
    path = ""

    def __init__(self) -> None:
        self.mode = "ok"
        self.retry_after = "7"
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.fake = self
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if path != self.path:
            return self.error(404, "not_found_error", f"no route {path}")
        if self.mode == "garbage":
            return 200, {}, b"<html>502 Bad Gateway</html>"
        error = {
            "rate_limited": (429, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"),
            "overloaded": (self.overloaded_status, "overloaded_error", "Overloaded"),
            "server_error": (500, "api_error", "Internal server error"),
            "bad_key": (401, "authentication_error", "invalid x-api-key"),
            "bad_request": (400, "invalid_request_error", "max_tokens: must be at most 64000"),
        }.get(self.mode)
        if error:
            status, kind, message = error
            headers = {"retry-after": self.retry_after} if status == 429 else {}
            return self.error(status, kind, message, headers)
        prompt = self.prompt(body)
        cap = int(body.get(self.cap_field) or 0)
        words = [] if self.mode == "empty" else [f"w{index}" for index in range(ANSWER_WORDS)]
        capped = len(words) > cap
        text = " ".join(words[:cap])
        return 200, {}, json.dumps(self.success(body, text, fake_tokens(prompt) + 3, min(len(words), cap), capped)).encode()

    # provider specifics
    overloaded_status = 503
    cap_field = ""

    def prompt(self, body: dict[str, Any]) -> str:
        return " ".join(str(message.get("content", "")) for message in body.get("messages", []))

    def error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def success(self, body: dict[str, Any], text: str, input_tokens: int, output_tokens: int, capped: bool) -> dict[str, Any]:
        raise NotImplementedError


class FakeOpenAI(_FakeProvider):
    """`POST /v1/chat/completions`, as api.openai.com answers it (base URL `…/v1`)."""

    path = "/v1/chat/completions"
    overloaded_status = 503
    cap_field = "max_completion_tokens"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if "max_tokens" in body and "max_completion_tokens" not in body:
            self.cap_field = "max_tokens"
        return super().answer(path, body)

    def error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        openai_type = {"rate_limit_error": "requests", "authentication_error": "invalid_request_error"}.get(kind, kind)
        body = {"error": {"message": message, "type": openai_type, "param": None, "code": None}}
        return status, headers or {}, json.dumps(body).encode()

    def success(self, body: dict[str, Any], text: str, input_tokens: int, output_tokens: int, capped: bool) -> dict[str, Any]:
        usage = {"prompt_tokens": input_tokens, "completion_tokens": output_tokens, "total_tokens": input_tokens + output_tokens}
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1764720000,
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text or None, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "length" if capped else "stop",
                }
            ],
        }
        if self.mode != "no_usage":
            answer["usage"] = usage
        return answer


class FakeAnthropic(_FakeProvider):
    """`POST /v1/messages`, as api.anthropic.com answers it."""

    path = "/v1/messages"
    overloaded_status = 529
    cap_field = "max_tokens"

    def error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        return status, headers or {}, json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()

    def success(self, body: dict[str, Any], text: str, input_tokens: int, output_tokens: int, capped: bool) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": [{"type": "text", "text": text}] if text else [],
            "stop_reason": "max_tokens" if capped else "end_turn",
            "stop_sequence": None,
        }
        if self.mode != "no_usage":
            answer["usage"] = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        return answer
