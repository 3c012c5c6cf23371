"""The estimate function's routes, invoked with API Gateway v2 events against DynamoDB Local."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from functions.estimate import app as estimate_app
from tests.integration.estimate_http import http_event, invoke
from tests.integration.fake_exchanges import FakeExchange
from timmy.identity.caller import Caller
from timmy.pricing.catalogue import default_catalogue
from timmy_http.services import Services, reset_services

PUBKEY = "a" * 64
BUDGETS = {"new": 0, "established": 50, "trusted": 200, "elite": 1000}


def get(query: dict[str, str] | None = None, raw_query: str | None = None) -> tuple[int, dict[str, Any]]:
    return invoke(estimate_app.lambda_handler, http_event("GET", "/api/estimate", query=query, raw_query=raw_query))


def post(body: Any, raw: str | bytes | None = None) -> tuple[int, dict[str, Any]]:
    text = raw if raw is not None else json.dumps(body, ensure_ascii=False)
    return invoke(estimate_app.lambda_handler, http_event("POST", "/api/estimate", body=text))


def assert_error(status: int, answer: dict[str, Any], expected_status: int, *words: str) -> None:
    assert status == expected_status, answer
    assert set(answer["error"]) == {"code", "message"}
    assert answer["error"]["code"].replace("_", "").isalpha() and answer["error"]["code"].islower()
    for word in words:
        assert word in answer["error"]["message"], answer


# --- answers -----------------------------------------------------------------------------------


def test_get_estimate_answers_the_contract_fields(services: Services) -> None:
    status, answer = get({"request": "Summarise the Lightning whitepaper", "model": "gpt-5", "max_output_tokens": "500"})
    assert status == 200, answer
    assert answer["model"] == "gpt-5"
    assert answer["btc_price_usd"] == "100000"
    assert answer["token_estimate"] == {"input": len(b"Summarise the Lightning whitepaper") + 32, "output": 500}
    assert answer["estimated_sats"] == services.pricing.estimate_request_cost("Summarise the Lightning whitepaper", "gpt-5", 500).sats
    assert answer["pool"] == {"balance_sats": 10_000, "daily_budgets": BUDGETS}
    assert "identity" not in answer


def test_post_estimate_matches_get(services: Services) -> None:
    request = "ünïcödé ⚡ " * 100
    status, posted = post({"request": request, "model": "claude-haiku-4-5", "max_output_tokens": 64})
    assert status == 200, posted
    status, got = get({"request": request, "model": "claude-haiku-4-5", "max_output_tokens": "64"})
    assert got == posted


def test_defaults_are_the_default_model_and_its_default_output(services: Services) -> None:
    status, answer = post({"request": "hello"})
    local = default_catalogue().get("timmy-local")
    assert status == 200 and answer["model"] == "timmy-local" and answer["token_estimate"]["output"] == local.default_output_tokens


def test_identity_block_is_advisory_and_debits_nothing(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(estimate_app, "optional_caller", lambda app, allow_query_token=False: Caller(PUBKEY, "trusted"))
    before = services.free_tier.pool_status()
    for _ in range(3):
        status, answer = get({"request": "a short question", "model": "gpt-5-nano", "max_output_tokens": "100"})
        assert status == 200, answer
    assert answer["identity"] == {
        "pubkey": PUBKEY,
        "tier": "trusted",
        "free_tier": {"serve": "free", "absorb_sats": answer["estimated_sats"], "charge_sats": 0},
    }
    assert services.free_tier.pool_status() == before


def test_anonymous_callers_see_no_identity_block(services: Services) -> None:
    status, answer = post({"request": "hi", "model": "gpt-5"})
    assert status == 200 and "identity" not in answer


def test_pool_answers_every_field(services: Services) -> None:
    status, answer = invoke(estimate_app.lambda_handler, http_event("GET", "/api/pool"))
    assert status == 200, answer
    assert answer == {
        "balance_sats": 10_000,
        "available_sats": 10_000,
        "reserved_sats": 0,
        "absorbed_today_sats": 0,
        "grants_today": 0,
        "credited_today_sats": 0,
        "daily_budgets": BUDGETS,
    }


# --- bad inputs, on both routes ------------------------------------------------------------------

BAD_MAX_OUTPUT = [
    ("-1", -1, "max_output_tokens"),
    ("0", 0, "max_output_tokens"),
    ("1.5", 1.5, "max_output_tokens"),
    ("ten", "ten", "max_output_tokens"),
    ("1" + "0" * 30, 10**30, "max_output_tokens"),
]


@pytest.mark.parametrize(("query_value", "json_value", "word"), BAD_MAX_OUTPUT)
def test_bad_max_output_tokens(services: Services, query_value: str, json_value: Any, word: str) -> None:
    assert_error(*get({"request": "hi", "model": "gpt-5", "max_output_tokens": query_value}), 400, word)
    assert_error(*post({"request": "hi", "model": "gpt-5", "max_output_tokens": json_value}), 400, word)


def test_max_output_tokens_over_the_model_maximum_names_it(services: Services) -> None:
    # Within the spec's bound (the largest any model allows) but over this model's own: too large for it.
    assert_error(*get({"request": "hi", "model": "gpt-4o-mini", "max_output_tokens": "16385"}), 413, "1 to 16384")
    assert_error(*post({"request": "hi", "model": "gpt-4o-mini", "max_output_tokens": 16385}), 413, "1 to 16384")


def test_no_request(services: Services) -> None:
    assert_error(*get({"model": "gpt-5"}), 400, "'request' is required")
    assert_error(*post({"model": "gpt-5"}), 400, "'request' is required")
    assert_error(*post(None, raw=""), 400, "the body is required")


@pytest.mark.parametrize("empty", ["", "   ", "\n\t"])
def test_empty_request(services: Services, empty: str) -> None:
    assert_error(*get({"request": empty}), 400, "empty")
    assert_error(*post({"request": empty}), 400, "empty")


def test_request_over_the_size_limit_is_413(services: Services) -> None:
    limit = services.settings.request_bytes_max
    assert_error(*get({"request": "x" * (limit + 1)}), 413, f"limit is {limit}")
    assert_error(*post({"request": "é" * (limit // 2 + 1)}), 413, f"limit is {limit}")


def test_request_over_the_context_window_is_413(services: Services) -> None:
    assert_error(*post({"request": "x" * 8_000, "model": "timmy-local", "max_output_tokens": 2_000}), 413, "context window")


def test_unknown_model_lists_the_known_ones(services: Services) -> None:
    for status, answer in (get({"request": "hi", "model": "gpt-99"}), post({"request": "hi", "model": "gpt-99"})):
        assert status == 400 and answer["error"]["code"] == "unknown_model"
        assert all(name in answer["error"]["message"] for name in default_catalogue().names())


@pytest.mark.parametrize(
    ("body", "word"),
    [
        ({"request": 42}, "'request'"),
        ({"request": ["a"]}, "'request'"),
        ({"request": "hi", "model": 5}, "'model'"),
        ({"request": "hi", "max_output_tokens": "100"}, "'max_output_tokens'"),
        ({"request": "hi", "max_output_tokens": True}, "'max_output_tokens'"),
        ({"request": "hi", "max_tokens": 100}, "'max_tokens'"),
        ([1, 2], "the body must be a JSON object"),
        ("just a string", "the body must be a JSON object"),
    ],
)
def test_wrong_json_types(services: Services, body: Any, word: str) -> None:
    assert_error(*post(body), 400, word)


def test_body_not_json(services: Services) -> None:
    assert_error(*post(None, raw="{request: hi"), 400, "not valid JSON")


def test_non_utf8_bytes(services: Services) -> None:
    assert_error(*post(None, raw=b'{"request": "\xff\xfe"}'), 400, "UTF-8")
    assert_error(*get(raw_query="request=%FF%FEhello&model=gpt-5"), 400, "UTF-8")


# --- the price oracle behind the route ------------------------------------------------------------


@pytest.fixture
def exchanges_env(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FakeExchange]]:
    fakes = [FakeExchange("coinbase", "90000"), FakeExchange("kraken", "90010"), FakeExchange("bitstamp", "90020")]
    monkeypatch.setenv("PRICE_SOURCE", "exchanges")
    monkeypatch.setenv("PRICE_FETCH_TIMEOUT_SECONDS", "0.5")
    for name, fake in zip(("COINBASE", "KRAKEN", "BITSTAMP"), fakes, strict=True):
        monkeypatch.setenv(f"PRICE_{name}_BASE_URL", fake.base_url)
    reset_services()
    try:
        yield fakes
    finally:
        for fake in fakes:
            fake.close()
        monkeypatch.undo()
        reset_services()


def test_estimate_uses_the_exchange_median(exchanges_env: list[FakeExchange]) -> None:
    status, answer = get({"request": "hi", "model": "gpt-5"})
    assert status == 200, answer
    assert answer["btc_price_usd"] == "90010"


def test_no_fresh_price_is_503_price_unavailable(exchanges_env: list[FakeExchange]) -> None:
    for fake in exchanges_env:
        fake.down()
    for status, answer in (get({"request": "hi"}), post({"request": "hi"})):
        assert_error(status, answer, 503, "price")
        assert answer["error"]["code"] == "price_unavailable"
