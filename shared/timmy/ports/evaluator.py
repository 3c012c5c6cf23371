"""The evaluator port: may Timmy take this request, and what is its quoted upper bound?

Runs before any write or invoice (`POST /api/jobs`, session requests). An accepted request comes
back as an `Evaluation` carrying the estimate (from `PricingService.estimate_request_cost`, the one
pricing entry); a refused one raises `EvaluationRefused`, a domain error whose status the HTTP
layer maps once: 400 (empty or not text, unknown model, `max_output_tokens` not 1 or more), 413 (over
the byte, token or context-window limits, or `max_output_tokens` over the model's own cap) or 422 (the content is disallowed). A missing BTC price is
not a refusal: pricing's 503 `Unavailable` passes through.

Adapters: `adapters/evaluator_rules.py` (`RulesEvaluator`, the default).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from timmy.errors import TimmyError
from timmy.metering import Estimate


class RefusalReason(StrEnum):
    INVALID = "invalid"  # 400: empty, not text, unknown model, max_output_tokens < 1 or not a whole number
    TOO_LARGE = "too_large"  # 413
    DISALLOWED = "disallowed"  # 422


REFUSAL_STATUS = {RefusalReason.INVALID: 400, RefusalReason.TOO_LARGE: 413, RefusalReason.DISALLOWED: 422}


class EvaluationRefused(TimmyError):
    """The evaluator refused the request; `reason` says which way, `code` exactly why."""

    def __init__(self, reason: RefusalReason, message: str, *, code: str, details: dict[str, Any] | None = None):
        super().__init__(message, code=code, details=details)
        self.reason = reason
        self.status_code = REFUSAL_STATUS[reason]


@dataclass(frozen=True)
class Evaluation:
    """An accepted request: its text and its quote (`estimate.output_tokens` is the output cap the
    executor must be given)."""

    request: str
    estimate: Estimate


class Evaluator(Protocol):
    def evaluate(self, request: object, model: str | None, max_output_tokens: object) -> Evaluation:
        """Accept `request` for `model` (None: the default model) and quote it, or raise EvaluationRefused."""
        ...
