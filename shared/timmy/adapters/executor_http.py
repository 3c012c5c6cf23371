"""What the provider executors share: one bounded call, and HTTP outcomes mapped to the port's errors.

The mapping (timmy.ports.executor): 429 → ExecutionRateLimited (with `retry-after`); 408, 409, 5xx and
Anthropic's 529 overloaded, or no connection → ProviderUnavailable (retryable); any other 4xx, a body
that is not the API's shape, or an answer over the size limit → ExecutionFailed; the deadline →
ExecutionTimedOut. The error text names the provider's own `error.message` (both APIs carry one),
never the request or a key.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from timmy.adapters.http_json import HttpAnswer, HttpAnswerTooLarge, HttpTimedOut, HttpUnreachable, exchange, retry_after_seconds
from timmy.ports.executor import ExecutionFailed, ExecutionRateLimited, ExecutionTimedOut, ExecutorError, ProviderUnavailable

ANSWER_BYTES_MAX = 8 * 1024 * 1024  # 128k output tokens at a few bytes each, with room
ERROR_MESSAGE_CHARS_MAX = 300
RETRYABLE_CLIENT_STATUSES = frozenset({408, 409})  # request timeout; Anthropic's conflict_error is retryable

ApiKey = Callable[[], str]  # fetched on first use: a deployment that sells one provider needs no key for the other


def _error_message(answer: HttpAnswer) -> str:
    """`error.message` of an OpenAI (`{"error": {...}}`) or Anthropic (`{"type": "error", "error": {...}}`) error body."""
    try:
        error = answer.json().get("error")
        text = error.get("message") if isinstance(error, dict) else error
        kind = error.get("type") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        return answer.body[:ERROR_MESSAGE_CHARS_MAX].decode("utf-8", errors="replace")
    return f"{kind}: {text}"[:ERROR_MESSAGE_CHARS_MAX] if kind else str(text)[:ERROR_MESSAGE_CHARS_MAX]


def error_for_status(provider: str, answer: HttpAnswer) -> ExecutorError:
    """The typed error of a non-2xx answer."""
    message = f"{provider} answered HTTP {answer.status}: {_error_message(answer)}"
    if answer.status == 429:
        return ExecutionRateLimited(message, retry_after_seconds(answer.headers))
    if answer.status >= 500 or answer.status in RETRYABLE_CLIENT_STATUSES:
        return ProviderUnavailable(message, answer.status, retry_after_seconds(answer.headers))
    return ExecutionFailed(message)


def post_json(provider: str, url: str, headers: Mapping[str, str], payload: dict[str, Any], timeout_seconds: float) -> dict[str, Any]:
    """POST `payload`; the 2xx answer's JSON object, or the port's typed error."""
    try:
        answer = exchange(
            "POST",
            url,
            headers={"Content-Type": "application/json", "Accept": "application/json", **headers},
            body=json.dumps(payload).encode("utf-8"),
            timeout_seconds=timeout_seconds,
            body_bytes_max=ANSWER_BYTES_MAX,
        )
    except HttpTimedOut as error:
        raise ExecutionTimedOut(f"{provider}: no answer within {timeout_seconds} s") from error
    except HttpUnreachable as error:
        raise ProviderUnavailable(f"{provider} unreachable: {error}") from error
    except HttpAnswerTooLarge as error:
        raise ExecutionFailed(f"{provider}: {error}") from error
    if not 200 <= answer.status < 300:
        raise error_for_status(provider, answer)
    if (data := answer.json_object()) is None:
        raise ExecutionFailed(f"{provider} answered HTTP {answer.status} with a body that is not a JSON object")
    return data


def token_count(value: object, provider: str, field: str) -> int:
    """A usage field: a non-negative integer, or the answer is garbage."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExecutionFailed(f"{provider}: usage.{field} is {value!r}, not a token count")
    return value
