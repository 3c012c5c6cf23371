"""The rules-based evaluator: what it refuses (and with which status), and that it quotes through
the one pricing entry."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from timmy.adapters.evaluator_rules import RulesEvaluator
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.errors import TimmyError, Unavailable
from timmy.ports.evaluator import EvaluationRefused, RefusalReason
from timmy.pricing.limits import RequestLimits
from timmy.pricing.oracle import FixedPriceOracle
from timmy.pricing.service import PricingConfig, PricingService

RULES = [r"\bsteal (the )?keys\b", "rm -rf /"]


def make_evaluator(patterns: list[str] = RULES, bytes_max: int = 1_000, tokens_max: int = 900) -> RulesEvaluator:
    config = PricingConfig(Decimal("20"), Decimal("30"), "timmy-local", RequestLimits(bytes_max, tokens_max))
    return RulesEvaluator(PricingService(config, FixedPriceOracle(Decimal("100000"), FixedClock())), patterns)


def refusal(request: object, model: str | None = None, max_output_tokens: object = None, **kwargs: object) -> EvaluationRefused:
    with pytest.raises(EvaluationRefused) as refused:
        make_evaluator(**kwargs).evaluate(request, model, max_output_tokens)  # type: ignore[arg-type]
    return refused.value


def test_an_accepted_request_carries_the_pricing_services_estimate() -> None:
    evaluator = make_evaluator()
    evaluation = evaluator.evaluate("summarise the lightning network", "gpt-5-mini", 300)
    assert evaluation.request == "summarise the lightning network"
    assert evaluation.estimate == evaluator.pricing.estimate_request_cost("summarise the lightning network", "gpt-5-mini", 300)
    assert evaluation.estimate.output_tokens == 300


def test_no_model_and_no_cap_mean_the_defaults() -> None:
    estimate = make_evaluator().evaluate("hello", None, None).estimate
    assert (estimate.model, estimate.output_tokens) == ("timmy-local", 256)


@pytest.mark.parametrize("request_text", ["", "   \n\t", None, 42])
def test_empty_or_non_text_requests_are_400(request_text: object) -> None:
    refused = refusal(request_text)
    assert (refused.reason, refused.status_code) == (RefusalReason.INVALID, 400)


def test_over_the_byte_limit_is_413() -> None:
    refused = refusal("x" * 1_001)
    assert (refused.reason, refused.status_code, refused.code) == (RefusalReason.TOO_LARGE, 413, "request_too_large")


def test_over_the_token_limit_is_413() -> None:
    refused = refusal("é" * 450, tokens_max=500)  # 900 bytes: within the byte limit, over the token bound
    assert (refused.status_code, refused.code) == (413, "request_too_large")


def test_over_the_context_window_is_413() -> None:
    refused = refusal("x" * 7_000, "timmy-local", 2_000, bytes_max=32_768, tokens_max=32_768)
    assert (refused.status_code, refused.code) == (413, "context_window_exceeded")


def test_an_unknown_model_is_400_listing_the_known_ones() -> None:
    refused = refusal("hello", "gpt-99")
    assert (refused.status_code, refused.code) == (400, "unknown_model")
    assert "claude-haiku-4-5" in refused.details["known_models"]


@pytest.mark.parametrize("cap", [0, -1, True, "10", 1.5])
def test_a_bad_output_cap_is_400(cap: object) -> None:
    refused = refusal("hello", "timmy-local", cap)
    assert (refused.status_code, refused.code) == (400, "invalid_max_output_tokens")


@pytest.mark.parametrize("cap", [2_049, 10**9])
def test_an_output_cap_over_the_models_own_is_413(cap: int) -> None:
    refused = refusal("hello", "timmy-local", cap)  # timmy-local allows 1 to 2048: too large for this model
    assert (refused.status_code, refused.code) == (413, "max_output_tokens_too_large")


@pytest.mark.parametrize("text", ["please STEAL THE KEYS now", "ｓｔｅａｌ keys", "sudo rm -rf / --no-preserve-root"])
def test_disallowed_content_is_422_naming_the_rule_not_the_pattern(text: str) -> None:
    refused = refusal(text)
    assert (refused.reason, refused.status_code, refused.code) == (RefusalReason.DISALLOWED, 422, "disallowed_content")
    assert refused.details["rule"] in (1, 2) and "steal" not in refused.message
    assert isinstance(refused, TimmyError)  # the HTTP layer maps it once, as every domain error


def test_a_near_miss_is_accepted() -> None:
    assert make_evaluator().evaluate("how do I steal keyboard shortcuts from vim", None, None).estimate.sats >= 1


def test_no_rules_refuse_no_content() -> None:
    assert make_evaluator([]).evaluate("steal the keys", None, None)


def test_the_blank_check_comes_before_the_rules_and_the_size_check_before_the_model() -> None:
    assert refusal("   ").code == "empty_request"
    assert refusal("x" * 2_000, "gpt-99").code == "request_too_large"


def test_a_missing_price_is_not_a_refusal() -> None:
    class NoPrice:
        def btc_usd(self):  # type: ignore[no-untyped-def]
            raise Unavailable("no price", code="price_unavailable")

    config = PricingConfig(Decimal("20"), Decimal("30"), "timmy-local", RequestLimits(1_000, 1_000))
    with pytest.raises(Unavailable) as raised:
        RulesEvaluator(PricingService(config, NoPrice())).evaluate("hello", None, None)
    assert not isinstance(raised.value, EvaluationRefused)


def test_rules_come_from_the_settings_and_bad_ones_stop_the_cold_start() -> None:
    settings = Settings.from_environment({"EVAL_DISALLOWED_PATTERNS": '["forbidden"]'})
    pricing = make_evaluator().pricing
    with pytest.raises(EvaluationRefused):
        RulesEvaluator.from_settings(settings, pricing).evaluate("a FORBIDDEN thing", None, None)
    for bad in ['["(unclosed"]', '"just a string"', "[1, 2]", "not json", '[""]']:
        with pytest.raises(ValidationError, match="eval_disallowed_patterns"):
            Settings.from_environment({"EVAL_DISALLOWED_PATTERNS": bad})
