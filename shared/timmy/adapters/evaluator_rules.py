"""The rules-based evaluator: the request limits, the catalogue and a list of disallowed patterns.

In this order, so a caller learns the cheapest thing to fix first and no regex runs on text over the
byte limit: the request is text and not blank (400), within `REQUEST_BYTES_MAX` (413); the model is
in the catalogue (400, listing the known ones); the text matches none of `EVAL_DISALLOWED_PATTERNS`
(422); then pricing quotes it, which checks `max_output_tokens` (400; 413 over the model's own cap), the input-token limit and the
context window (413). Patterns match case-insensitively against the NFKC form of the text, so
full-width letters or ligatures do not slip past a rule; the refusal names the rule's number, not
its pattern (an operator's list is not a guide to getting around it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from timmy.config import Settings, parse_patterns
from timmy.errors import InvalidInput, PayloadTooLarge
from timmy.ports.evaluator import Evaluation, EvaluationRefused, RefusalReason
from timmy.pricing.service import PricingService


def _refused(error: InvalidInput | PayloadTooLarge) -> EvaluationRefused:
    reason = RefusalReason.TOO_LARGE if isinstance(error, PayloadTooLarge) else RefusalReason.INVALID
    return EvaluationRefused(reason, error.message, code=error.code, details=error.details)


class RulesEvaluator:
    """Refuses what the rules refuse; quotes the rest through the pricing service."""

    def __init__(self, pricing: PricingService, disallowed_patterns: Sequence[str] = ()):
        self.pricing = pricing
        self.rules = [re.compile(pattern, re.IGNORECASE) for pattern in disallowed_patterns]

    @classmethod
    def from_settings(cls, settings: Settings, pricing: PricingService) -> RulesEvaluator:
        return cls(pricing, parse_patterns(settings.eval_disallowed_patterns))

    def evaluate(self, request: object, model: str | None, max_output_tokens: object) -> Evaluation:
        try:
            text = self.pricing.config.limits.check_request(request)
            priced = self.pricing.model(model)
        except (InvalidInput, PayloadTooLarge) as error:
            raise _refused(error) from error
        self._check_content(text)
        try:
            output_cap = self.pricing.config.limits.check_max_output_tokens(max_output_tokens, priced)
            estimate = self.pricing.estimate_request_cost(text, priced, output_cap)
        except (InvalidInput, PayloadTooLarge) as error:
            raise _refused(error) from error
        return Evaluation(request=text, estimate=estimate)

    def _check_content(self, text: str) -> None:
        if not self.rules:
            return
        folded = unicodedata.normalize("NFKC", text)
        for number, rule in enumerate(self.rules, start=1):
            if rule.search(folded) or rule.search(text):
                raise EvaluationRefused(
                    RefusalReason.DISALLOWED,
                    f"the request matches disallowed-content rule {number} of this service; it was not priced or run",
                    code="disallowed_content",
                    details={"rule": number},
                )
