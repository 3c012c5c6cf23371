"""The executor port: run one request under an output-token cap, answer text and true usage.

Every failure is one of the typed errors below, so the worker can tell "never charge" (all of them)
from a result it settles on the reported usage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from timmy.pricing.service import TokenUsage


@dataclass(frozen=True)
class ExecutionResult:
    text: str
    usage: TokenUsage


class ExecutorError(Exception):
    """The work did not produce a chargeable answer."""


class ExecutionFailed(ExecutorError):
    """The provider answered with an error (or garbage)."""


class ExecutionTimedOut(ExecutorError):
    """No answer within the executor's timeout."""


class ExecutionRateLimited(ExecutorError):
    """The provider refused for rate (HTTP 429); `retry_after_seconds` when it said."""

    def __init__(self, message: str, retry_after_seconds: float | None = None):
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class EmptyOutput(ExecutorError):
    """The provider answered, but with no text: never charged."""


class Executor(Protocol):
    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        """Run `request` on `model`, producing at most `max_output_tokens` output tokens."""
        ...
