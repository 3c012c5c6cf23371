"""The executor port: run one request under an output-token cap, answer text and true usage.

Every failure is one of the typed errors below, so the worker can tell "never charge" (all of them)
from a result it settles on the reported usage. `retryable` says whether running the same request
again may succeed (a rate limit, an overloaded or unreachable provider, a timeout) or not (a
refused request, a bad key, an empty answer): the job flow retries the first kind within its
bounded redeliveries and fails the second at once.

Adapters: `adapters/executor_deterministic.py` (local default), `executor_openai.py` (OpenAI-
compatible chat completions), `executor_anthropic.py` (Anthropic messages), `executor_routing.py`
(one per catalogue provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from timmy.metering import TokenUsage


@dataclass(frozen=True)
class ExecutionResult:
    text: str
    usage: TokenUsage


class ExecutorError(Exception):
    """The work did not produce a chargeable answer."""

    retryable = False


class ExecutionFailed(ExecutorError):
    """The provider refused the request or answered garbage (a 4xx other than 429, a bad body):
    running it again would fail the same way."""


class ExecutionTimedOut(ExecutorError):
    """No answer within the executor's timeout."""

    retryable = True


class ExecutionRateLimited(ExecutorError):
    """The provider refused for rate (HTTP 429); `retry_after_seconds` when it said."""

    retryable = True

    def __init__(self, message: str, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class ProviderUnavailable(ExecutorError):
    """The provider could not serve now: a 5xx, Anthropic's 529 overloaded, or no connection."""

    retryable = True

    def __init__(self, message: str, status: int | None = None, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after_seconds = retry_after_seconds


class EmptyOutput(ExecutorError):
    """The provider answered, but with no text: never charged."""


class Executor(Protocol):
    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        """Run `request` on `model`, producing at most `max_output_tokens` output tokens."""
        ...
