"""The executor for Anthropic's messages API (`POST {base_url}/v1/messages`).

One user message, `max_tokens` = the output cap, `anthropic-version: 2023-06-01`. The text is the
answer's `text` content blocks joined; usage is `usage.input_tokens` (plus any cache-creation and
cache-read input tokens, which Anthropic counts apart) and `usage.output_tokens`. No text (e.g.
`stop_reason: "refusal"` before any, or `max_tokens` spent on thinking) is EmptyOutput: never
charged. Errors come as `{"type": "error", "error": {"type", "message"}}`: 429 `rate_limit_error`
(with `retry-after`), 529 `overloaded_error` and 500 `api_error` are retryable.
"""

from __future__ import annotations

from typing import Any

from timmy.adapters.executor_http import ApiKey, post_json, token_count
from timmy.metering import TokenUsage
from timmy.ports.executor import EmptyOutput, ExecutionFailed, ExecutionResult

PROVIDER = "anthropic"
API_VERSION = "2023-06-01"
CACHE_INPUT_FIELDS = ("cache_creation_input_tokens", "cache_read_input_tokens")


class AnthropicExecutor:
    """Runs a request on Anthropic's messages API."""

    def __init__(self, base_url: str, api_key: ApiKey, timeout_seconds: float):
        self.url = base_url.rstrip("/") + "/v1/messages"
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        payload = {"model": model, "max_tokens": max_output_tokens, "messages": [{"role": "user", "content": request}]}
        headers = {"x-api-key": self.api_key(), "anthropic-version": API_VERSION}
        data = post_json(PROVIDER, self.url, headers, payload, self.timeout_seconds)
        return self._result(data)

    @staticmethod
    def _result(data: dict[str, Any]) -> ExecutionResult:
        content, usage = data.get("content"), data.get("usage")
        if data.get("type") != "message" or not isinstance(content, list) or not isinstance(usage, dict):
            raise ExecutionFailed(f"{PROVIDER}: the answer is not a message with content and usage")
        input_tokens = token_count(usage.get("input_tokens"), PROVIDER, "input_tokens")
        for field in CACHE_INPUT_FIELDS:
            if usage.get(field) is not None:
                input_tokens += token_count(usage[field], PROVIDER, field)
        tokens = TokenUsage(input_tokens=input_tokens, output_tokens=token_count(usage.get("output_tokens"), PROVIDER, "output_tokens"))
        text = "".join(str(block.get("text", "")) for block in content if isinstance(block, dict) and block.get("type") == "text")
        if not text.strip():
            raise EmptyOutput(
                f"{PROVIDER} answered no text (stop_reason {data.get('stop_reason')!r}, {tokens.output_tokens} output tokens)"
            )
        return ExecutionResult(text=text, usage=tokens)
