"""The executor for OpenAI-compatible chat completions (`POST {base_url}/chat/completions`).

One user message, no system prompt (the estimate's input bound covers the request and its chat
framing only), the output cap sent as `max_completion_tokens` (OpenAI's current name; reasoning
models refuse `max_tokens`) or, for older compatible servers, `max_tokens`
(`OPENAI_MAX_TOKENS_FIELD`). Usage is the answer's `usage.prompt_tokens` / `usage.completion_tokens`
(reasoning tokens are inside the completion count, and inside the cap). An answer with no text —
`content` null or "", e.g. `finish_reason: "length"` spent on reasoning, or `content_filter` — is
EmptyOutput: never charged.
"""

from __future__ import annotations

from typing import Any, Literal

from timmy.adapters.executor_http import ApiKey, post_json, token_count
from timmy.metering import TokenUsage
from timmy.ports.executor import EmptyOutput, ExecutionFailed, ExecutionResult

PROVIDER = "openai"
MaxTokensField = Literal["max_completion_tokens", "max_tokens"]


def _text(content: object) -> str:
    """`message.content`: a string, null, or (some compatible servers) a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text")
    raise ExecutionFailed(f"{PROVIDER}: message.content is a {type(content).__name__}")


class OpenAIExecutor:
    """Runs a request on an OpenAI-compatible chat-completions API."""

    def __init__(self, base_url: str, api_key: ApiKey, timeout_seconds: float, max_tokens_field: MaxTokensField = "max_completion_tokens"):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.max_tokens_field = max_tokens_field

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        payload: dict[str, Any] = {
            "model": model,
            "messages": [{"role": "user", "content": request}],
            self.max_tokens_field: max_output_tokens,
            "n": 1,
            "stream": False,
        }
        headers = {"Authorization": f"Bearer {self.api_key()}"}
        data = post_json(PROVIDER, self.url, headers, payload, self.timeout_seconds)
        return self._result(data)

    @staticmethod
    def _result(data: dict[str, Any]) -> ExecutionResult:
        try:
            choice = data["choices"][0]
            message, finish_reason, usage = choice["message"], choice.get("finish_reason"), data["usage"]
        except (KeyError, IndexError, TypeError) as error:
            raise ExecutionFailed(f"{PROVIDER}: the answer has no choices[0].message or no usage") from error
        if not isinstance(usage, dict) or not isinstance(message, dict):
            raise ExecutionFailed(f"{PROVIDER}: usage or message is not an object")
        tokens = TokenUsage(
            input_tokens=token_count(usage.get("prompt_tokens"), PROVIDER, "prompt_tokens"),
            output_tokens=token_count(usage.get("completion_tokens"), PROVIDER, "completion_tokens"),
        )
        text = _text(message.get("content"))
        if not text.strip():
            raise EmptyOutput(f"{PROVIDER} answered no text (finish_reason {finish_reason!r}, {tokens.output_tokens} output tokens)")
        return ExecutionResult(text=text, usage=tokens)
