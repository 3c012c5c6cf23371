import pytest

from timmy.adapters.executor_deterministic import DeterministicExecutor
from timmy.ports.executor import EmptyOutput
from timmy.pricing.tokens import input_tokens_upper_bound


def test_same_request_same_answer_and_true_counts():
    first = DeterministicExecutor().run("what is two plus two", "timmy-local", 256)
    second = DeterministicExecutor().run("what is two plus two", "timmy-local", 256)
    assert first == second
    assert first.text.endswith("] two plus two is what")
    assert first.usage.input_tokens == input_tokens_upper_bound("what is two plus two")
    assert first.usage.output_tokens == len(first.text.encode("utf-8"))


@pytest.mark.parametrize("cap", [1, 5, 17])
def test_output_cap_is_honoured_even_mid_character(cap):
    result = DeterministicExecutor().run("héllo wörld ünïcode " * 20, "timmy-local", cap)
    assert result.usage.output_tokens <= cap
    assert len(result.text.encode("utf-8")) <= cap


def test_blank_request_is_empty_output():
    with pytest.raises(EmptyOutput):
        DeterministicExecutor().run("   ", "timmy-local", 10)


@pytest.mark.parametrize("model", ["gpt-5", "gpt-4o-mini", "claude-haiku-4-5", "timmy-local"])
@pytest.mark.parametrize("request_text", ["what is two plus two", "tell me about lightning. " * 200], ids=["short", "long"])
def test_usage_never_exceeds_the_estimate_whichever_count_the_estimate_used(model: str, request_text: str) -> None:
    from decimal import Decimal

    from timmy.clock import FixedClock
    from timmy.pricing.limits import RequestLimits
    from timmy.pricing.oracle import FixedPriceOracle
    from timmy.pricing.service import PricingConfig, PricingService

    config = PricingConfig(Decimal("20"), Decimal("30"), "timmy-local", RequestLimits(32_768, 32_768))
    estimate = PricingService(config, FixedPriceOracle(Decimal("100000"), FixedClock())).estimate_request_cost(request_text, model, 64)
    usage = DeterministicExecutor().run(request_text, model, 64).usage
    assert usage.input_tokens <= estimate.input_tokens and usage.output_tokens <= estimate.output_tokens
