"""Exact counts for OpenAI's models: the packaged o200k_base agrees with an independent encoder, is
loaded only where it moves a quote, and the estimate stays an upper bound."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from timmy.clock import FixedClock
from timmy.pricing import tokenizer
from timmy.pricing.catalogue import default_catalogue
from timmy.pricing.limits import RequestLimits
from timmy.pricing.oracle import FixedPriceOracle
from timmy.pricing.service import PricingConfig, PricingService
from timmy.pricing.tokens import FRAMING_TOKENS, input_tokens_upper_bound

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = [json.loads(line) for line in (ROOT / "bench" / "prompts.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]


def make_pricing() -> PricingService:
    config = PricingConfig(Decimal("20"), Decimal("30"), "timmy-local", RequestLimits(32_768, 32_768))
    return PricingService(config, FixedPriceOracle(Decimal("100000"), FixedClock()))


def test_counts_match_the_recorded_true_counts_of_every_sample_prompt() -> None:
    """bench/prompts.jsonl's counts were made by a plain-Python byte-pair encoder (bench/tokens.py)."""
    assert [tokenizer.count_tokens(row["prompt"], "o200k_base") for row in PROMPTS] == [row["o200k_base_tokens"] for row in PROMPTS]


def test_special_token_text_counts_as_text() -> None:
    assert tokenizer.count_tokens("<|endoftext|>", "o200k_base") > 1


def test_every_openai_model_names_the_packaged_encoding_and_no_other_model_claims_one() -> None:
    for model in default_catalogue().models.values():
        assert model.tokenizer == ("o200k_base" if model.provider == "openai" else None), model.name


def test_a_long_request_is_quoted_on_its_exact_count() -> None:
    text = "\n".join(row["prompt"] for row in PROMPTS) * 4
    estimate = make_pricing().estimate_request_cost(text, "gpt-5")
    assert estimate.input_tokens == tokenizer.count_tokens(text, "o200k_base") + FRAMING_TOKENS
    assert estimate.input_tokens < input_tokens_upper_bound(text) / 3


def test_a_short_request_keeps_the_bound_where_its_input_cannot_move_the_quote() -> None:
    pricing = make_pricing()
    estimate = pricing.estimate_request_cost("hi", "gpt-5-mini")
    assert estimate.input_tokens == input_tokens_upper_bound("hi")
    assert pricing.work_fee_usd(0, estimate.output_tokens, "gpt-5-mini") < estimate.usd  # the input costs something ...
    assert pricing.estimate_request_cost("h", "gpt-5-mini").sats == estimate.sats  # ... but no whole sat


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-5", "gpt-5-nano"])
def test_every_sample_prompt_is_quoted_as_its_exact_count_would_be(model: str) -> None:
    """Where the bound's input could move the quote by a sat, the quote is the exact count's: a
    short request is not charged a sat more for the bound (bench/money.py's quoted / charged)."""
    pricing = make_pricing()
    for row in PROMPTS:
        estimate = pricing.estimate_request_cost(row["prompt"], model, 1024)
        exact = pricing.work_fee_usd(tokenizer.count_tokens(row["prompt"], "o200k_base") + FRAMING_TOKENS, 1024, model)
        assert estimate.sats == pricing.estimate_request_cost("x", model, 1024).sats or estimate.usd == exact, row["prompt"][:40]


def test_models_without_a_public_tokenizer_keep_the_bound() -> None:
    text = "word " * 5_000
    assert make_pricing().estimate_request_cost(text, "claude-sonnet-4-5").input_tokens == input_tokens_upper_bound(text)


@pytest.mark.parametrize("text", ["a" * 32_000, "x" * 16_000 + "🙂" * 4_000, "<|endoftext|>" * 2_000, "\u0301" * 10_000])
def test_the_quote_never_falls_below_the_true_count_and_hostile_text_is_fast(text: str) -> None:
    started = time.perf_counter()
    estimate = make_pricing().estimate_request_cost(text, "gpt-5-nano", 1)
    assert time.perf_counter() - started < 1.0
    assert tokenizer.count_tokens(text, "o200k_base") < estimate.input_tokens <= input_tokens_upper_bound(text)


def test_pricing_a_short_request_never_imports_the_tokenizer() -> None:
    code = (
        "import sys; from decimal import Decimal; from timmy.clock import FixedClock; "
        "from timmy.pricing.limits import RequestLimits; from timmy.pricing.oracle import FixedPriceOracle; "
        "from timmy.pricing.service import PricingConfig, PricingService; "
        "config = PricingConfig(Decimal(20), Decimal(30), 'timmy-local', RequestLimits(32768, 32768)); "
        "PricingService(config, FixedPriceOracle(Decimal(100000), FixedClock())).estimate_request_cost('hi', 'gpt-5-mini'); "
        "assert 'tiktoken' not in sys.modules and 'timmy.pricing.tokenizer' not in sys.modules, 'loaded'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={"PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}"})


def test_a_corrupted_vocabulary_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = json.loads((tokenizer.ENCODINGS_DIR / "o200k_base.json").read_text())
    (tmp_path / "o200k_base.json").write_text(json.dumps(spec))
    packed = bytearray((tokenizer.ENCODINGS_DIR / "o200k_base.ranks.gz").read_bytes())
    packed[-20] ^= 1
    (tmp_path / "o200k_base.ranks.gz").write_bytes(bytes(packed))
    monkeypatch.setattr(tokenizer, "ENCODINGS_DIR", tmp_path)
    tokenizer.encoding.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="checksum"):
            tokenizer.encoding("o200k_base")
    finally:
        monkeypatch.undo()
        tokenizer.encoding.cache_clear()
