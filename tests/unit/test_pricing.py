"""PricingService: one arithmetic for estimates and charges (the double-margin regression), upper
bounds, request limits, and the catalogue."""

from __future__ import annotations

import json
import math
import unicodedata
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timmy.clock import FixedClock
from timmy.errors import InvalidInput, PayloadTooLarge
from timmy.metering import Estimate, TokenUsage
from timmy.money import SATS_PER_BTC
from timmy.pricing.catalogue import default_catalogue, load_catalogue
from timmy.pricing.limits import RequestLimits
from timmy.pricing.oracle import FixedPriceOracle
from timmy.pricing.service import PricingConfig, PricingService
from timmy.pricing.tokens import FRAMING_TOKENS
from timmy.telemetry import LoggingTelemetry

BTC_USD = Decimal("97123.45")
MODELS = default_catalogue().names()


def make_pricing(infra: str = "20", margin: str = "30", bytes_max: int = 32_768, tokens_max: int = 32_768) -> PricingService:
    config = PricingConfig(Decimal(infra), Decimal(margin), "timmy-local", RequestLimits(bytes_max, tokens_max))
    return PricingService(config, FixedPriceOracle(BTC_USD, FixedClock()), telemetry=LoggingTelemetry())


def independent_sats(model: str, input_tokens: int, output_tokens: int) -> int:
    """The contract's formula written out here, apart from the code under test: margin applied once."""
    entry = next(m for m in json.loads(Path("shared/timmy/pricing/catalogue.json").read_text())["models"] if m["name"] == model)
    raw = (
        input_tokens * Decimal(entry["input_usd_per_million_tokens"]) + output_tokens * Decimal(entry["output_usd_per_million_tokens"])
    ) / 1_000_000
    fee = raw * Decimal("1.2") * Decimal("1.3")
    return max(1, math.ceil(fee * SATS_PER_BTC / BTC_USD))


# --- the earlier version's double-margin bug ---------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("input_tokens", "output_tokens"), [(FRAMING_TOKENS + 1, 1), (100, 256), (5_000, 2_000), (40, 2_048)])
def test_estimate_and_actual_paths_give_the_same_sats_for_the_same_tokens(model: str, input_tokens: int, output_tokens: int) -> None:
    pricing = make_pricing()
    estimate = pricing.estimate_request_cost("x" * (input_tokens - FRAMING_TOKENS), model, output_tokens)
    assert estimate.output_tokens == output_tokens and estimate.input_tokens <= input_tokens  # exact counts may be lower
    input_tokens = estimate.input_tokens
    actual = pricing.actual_charge_sats(TokenUsage(input_tokens, output_tokens), model, estimate)
    expected = independent_sats(model, input_tokens, output_tokens)
    assert estimate.sats == expected, "the estimate path applies infra and margin once"
    assert actual == expected, "the actual path applies infra and margin once (no second margin)"


def test_work_fee_applies_infra_and_margin_once() -> None:
    pricing = make_pricing()
    # gpt-5: $1.25 in, $10 out per million
    assert pricing.work_fee_usd(1_000_000, 0, "gpt-5") == Decimal("1.25") * Decimal("1.2") * Decimal("1.3")
    assert pricing.work_fee_usd(0, 1_000_000, "gpt-5") == Decimal("10") * Decimal("1.56")
    assert make_pricing(infra="0", margin="0").work_fee_usd(2_000_000, 0, "gpt-5") == Decimal("2.5")


# --- charges -----------------------------------------------------------------------------------


def test_no_usage_reported_charges_the_estimate() -> None:
    pricing = make_pricing()
    estimate = pricing.estimate_request_cost("hello", "claude-sonnet-4-5", 500)
    assert pricing.actual_charge_sats(None, "claude-sonnet-4-5", estimate) == estimate.sats


def test_usage_above_the_estimate_is_capped_and_counted() -> None:
    pricing = make_pricing()
    estimate = pricing.estimate_request_cost("hello", "gpt-5", 100)
    charged = pricing.actual_charge_sats(TokenUsage(estimate.input_tokens, 100_000), "gpt-5", estimate)
    assert charged == estimate.sats
    telemetry = pricing.telemetry
    assert isinstance(telemetry, LoggingTelemetry)
    assert telemetry.counts == {"TokenEstimateOverrun": 1}
    assert telemetry.warnings and telemetry.warnings[0][1]["output_tokens"] == 100_000


def test_an_estimate_survives_storage_exactly() -> None:
    estimate = make_pricing().estimate_request_cost("hello ⚡", "claude-opus-4-5", 1234)
    stored = json.loads(json.dumps(estimate.as_dict()))
    assert Estimate.from_dict(stored) == estimate
    assert not any(isinstance(value, float) for value in stored.values())


def test_usage_of_another_model_cannot_settle_an_estimate() -> None:
    pricing = make_pricing()
    estimate = pricing.estimate_request_cost("hello", "gpt-5", 100)
    with pytest.raises(ValueError):
        pricing.actual_charge_sats(TokenUsage(1, 1), "gpt-5-mini", estimate)


def test_free_model_costs_zero_sats(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.json"
    free = {"name": "free", "provider": "local", "input_usd_per_million_tokens": "0", "output_usd_per_million_tokens": "0"}
    free |= {"default_output_tokens": 10, "max_output_tokens": 100, "context_window_tokens": 1000, "prices_date": "2025-11-25"}
    path.write_text(json.dumps({"models": [free]}))
    config = PricingConfig(Decimal(20), Decimal(30), "free", RequestLimits(500, 500))
    pricing = PricingService(config, FixedPriceOracle(BTC_USD, FixedClock()), catalogue=load_catalogue(path))
    assert pricing.estimate_request_cost("hi").sats == 0


# --- estimates are upper bounds, limits ----------------------------------------------------------


def test_input_tokens_bound_the_utf8_bytes() -> None:
    pricing = make_pricing()
    assert pricing.estimate_input_tokens("hello") == len("hello") + FRAMING_TOKENS
    # "é" decomposes (NFD) into two code points, 3 bytes instead of 2: the longest form counts.
    assert pricing.estimate_input_tokens("héllo ⚡") == len(unicodedata.normalize("NFD", "héllo ⚡").encode()) + FRAMING_TOKENS


def test_output_tokens_default_and_cap_per_model() -> None:
    pricing = make_pricing()
    for name in MODELS:
        model = pricing.model(name)
        assert pricing.estimate_output_tokens("x", name) == model.default_output_tokens
        assert pricing.estimate_output_tokens("x", name, model.max_output_tokens) == model.max_output_tokens
        with pytest.raises(PayloadTooLarge, match=f"1 to {model.max_output_tokens}") as caught:
            pricing.estimate_output_tokens("x", name, model.max_output_tokens + 1)
        assert (caught.value.status_code, caught.value.code) == (413, "max_output_tokens_too_large")  # too large for this model


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, "10", Decimal("5")])
def test_bad_max_output_tokens_are_400(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_pricing().estimate_request_cost("hello", "gpt-5", bad)  # type: ignore[arg-type]
    assert "max_output_tokens" in caught.value.message


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        make_pricing().estimate_request_cost("hello", "gpt-99")
    assert caught.value.code == "unknown_model"
    assert all(name in caught.value.message for name in MODELS)


@pytest.mark.parametrize(
    ("request_text", "code"),
    [
        (None, "missing_request"),
        ("", "empty_request"),
        ("  \n\t", "empty_request"),
        (42, "invalid_request"),
        ("\ud800", "invalid_encoding"),
    ],
)
def test_bad_requests_are_400(request_text: object, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        make_pricing().estimate_request_cost(request_text)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_request_over_the_byte_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="limit is 100 UTF-8 bytes"):
        make_pricing(bytes_max=100).estimate_request_cost("€" * 34)  # 102 bytes


def test_request_over_the_token_limit_is_413() -> None:
    with pytest.raises(PayloadTooLarge, match="input tokens"):
        make_pricing(tokens_max=100).estimate_request_cost("x" * 80)


def test_request_over_the_context_window_is_413() -> None:
    pricing = make_pricing()
    window = pricing.model("timmy-local").context_window_tokens
    with pytest.raises(PayloadTooLarge) as caught:
        pricing.estimate_request_cost("x" * (window - FRAMING_TOKENS - 100), "timmy-local", 101)
    assert caught.value.code == "context_window_exceeded"
    pricing.estimate_request_cost("x" * (window - FRAMING_TOKENS - 100), "timmy-local", 100)  # exactly fits


def test_catalogue_has_the_local_model_and_two_real_providers() -> None:
    catalogue = default_catalogue()
    providers = {model.provider for model in catalogue.models.values()}
    assert {"local", "openai", "anthropic"} <= providers
    for model in catalogue.models.values():
        assert isinstance(model.input_usd_per_million_tokens, Decimal) and isinstance(model.output_usd_per_million_tokens, Decimal)
        assert model.prices_date


# --- properties ---------------------------------------------------------------------------------


@st.composite
def priced_requests(draw: st.DrawFn) -> tuple[str, str, int, int, int]:
    model = default_catalogue().get(draw(st.sampled_from(MODELS)))
    text = draw(st.text(min_size=1, max_size=2_000).filter(str.strip))
    max_output_tokens = draw(st.integers(1, min(model.max_output_tokens, model.context_window_tokens - 8_100)))
    used_input = draw(st.integers(0, 10**6))
    used_output = draw(st.integers(0, max_output_tokens))
    return text, model.name, max_output_tokens, used_input, used_output


@settings(max_examples=300, deadline=None)
@given(priced_requests())
def test_any_usage_within_the_caps_costs_at_most_the_estimate(case: tuple[str, str, int, int, int]) -> None:
    text, model, max_output_tokens, used_input, used_output = case
    pricing = make_pricing()
    try:
        estimate = pricing.estimate_request_cost(text, model, max_output_tokens)
    except (InvalidInput, PayloadTooLarge):
        return  # surrogates or over the window: refused, nothing to charge
    used_input = min(used_input, estimate.input_tokens)  # the true count is below the bound
    charged = pricing.actual_charge_sats(TokenUsage(used_input, used_output), model, estimate)
    assert isinstance(charged, int) and isinstance(estimate.sats, int)
    assert 0 <= charged <= estimate.sats
    assert estimate.sats >= 1, "non-free work is never 0 sats"
    if used_input + used_output > 0:
        assert charged >= 1
    assert isinstance(estimate.usd, Decimal) and isinstance(estimate.btc_price_usd, Decimal)
    assert not any(isinstance(value, float) for value in vars(estimate).values())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(MODELS), st.integers(0, 10**7), st.integers(0, 10**6))
def test_work_fee_is_exact_decimal(model: str, input_tokens: int, output_tokens: int) -> None:
    fee = make_pricing().work_fee_usd(input_tokens, output_tokens, model)
    assert isinstance(fee, Decimal)
    entry = default_catalogue().get(model)
    raw = (input_tokens * entry.input_usd_per_million_tokens + output_tokens * entry.output_usd_per_million_tokens) / Decimal(1_000_000)
    assert fee == raw * Decimal("1.56")


@pytest.mark.parametrize(
    ("text", "claude_tokens_known"),
    [("\ufdfa" * 1000, 15_000), ("\ufdfb" * 1000, 7_000)],  # counts from Anthropic's published tokenizer (NFKC first)
)
def test_the_input_bound_covers_tokenizers_that_normalise_first(text: str, claude_tokens_known: int) -> None:
    """NFKC turns U+FDFA (3 bytes) into 18 characters: a bound on the bytes as sent would undercharge."""
    from timmy.pricing.tokens import input_tokens_upper_bound

    assert input_tokens_upper_bound(text) >= claude_tokens_known
    assert input_tokens_upper_bound(text) >= len(unicodedata.normalize("NFKC", text).encode())


def test_work_reported_as_zero_tokens_still_costs_a_sat() -> None:
    pricing = make_pricing()
    estimate = pricing.estimate_request_cost("hello", "gpt-5")
    assert estimate.sats > 0
    assert pricing.actual_charge_sats(TokenUsage(0, 0), "gpt-5", estimate) == 1
