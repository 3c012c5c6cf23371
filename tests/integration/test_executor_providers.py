"""The OpenAI-compatible and Anthropic executors against fake servers that answer as those APIs do."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.llm_providers import ANSWER_WORDS, FakeAnthropic, FakeOpenAI, fake_tokens
from timmy.adapters.executor_anthropic import AnthropicExecutor
from timmy.adapters.executor_deterministic import DeterministicExecutor
from timmy.adapters.executor_openai import OpenAIExecutor
from timmy.adapters.executor_routing import RoutingExecutor, executor_from_settings
from timmy.config import Settings
from timmy.ports.executor import (
    EmptyOutput,
    ExecutionFailed,
    ExecutionRateLimited,
    ExecutionTimedOut,
    Executor,
    ExecutorError,
    ProviderUnavailable,
)

TIMEOUT_SECONDS = 2.0
PROMPT = "write a haiku about lightning payments"


@pytest.fixture(params=["openai", "anthropic"])
def provider(request: pytest.FixtureRequest) -> Iterator[tuple[FakeOpenAI | FakeAnthropic, Callable[[float], Executor], str]]:
    """A fake provider on a free port, an executor factory (by timeout) for it, and a model it sells."""
    if request.param == "openai":
        fake: FakeOpenAI | FakeAnthropic = FakeOpenAI()
        model = "gpt-5-mini"

        def make(timeout: float) -> Executor:
            return OpenAIExecutor(fake.base_url, lambda: "sk-test", timeout)
    else:
        fake = FakeAnthropic()
        model = "claude-haiku-4-5"

        def make(timeout: float) -> Executor:
            return AnthropicExecutor(fake.base_url, lambda: "sk-ant-test", timeout)

    try:
        yield fake, make, model
    finally:
        fake.close()


def test_true_usage_and_text_come_from_the_answer(provider) -> None:
    fake, make, model = provider
    result = make(TIMEOUT_SECONDS).run(PROMPT, model, 100)
    assert result.text.split() == [f"w{i}" for i in range(ANSWER_WORDS)]
    assert (result.usage.input_tokens, result.usage.output_tokens) == (fake_tokens(PROMPT) + 3, ANSWER_WORDS)
    sent = fake.requests[-1]
    assert sent["body"]["model"] == model and sent["body"]["messages"] == [{"role": "user", "content": PROMPT}]


def test_the_output_cap_is_sent_and_the_capped_usage_reported(provider) -> None:
    fake, make, model = provider
    result = make(TIMEOUT_SECONDS).run(PROMPT, model, 5)
    assert result.usage.output_tokens == 5 and len(result.text.split()) == 5
    field = "max_completion_tokens" if isinstance(fake, FakeOpenAI) else "max_tokens"
    assert fake.requests[-1]["body"][field] == 5


def test_the_key_goes_in_the_providers_header(provider) -> None:
    fake, make, model = provider
    make(TIMEOUT_SECONDS).run(PROMPT, model, 10)
    headers = fake.requests[-1]["headers"]
    if isinstance(fake, FakeOpenAI):
        assert headers["authorization"] == "Bearer sk-test"
    else:
        assert (headers["x-api-key"], headers["anthropic-version"]) == ("sk-ant-test", "2023-06-01")


def test_an_empty_answer_is_empty_output_never_charged(provider) -> None:
    fake, make, model = provider
    fake.mode = "empty"
    with pytest.raises(EmptyOutput) as raised:
        make(TIMEOUT_SECONDS).run(PROMPT, model, 10)
    assert not raised.value.retryable


def test_429_is_rate_limited_with_retry_after(provider) -> None:
    fake, make, model = provider
    fake.mode, fake.retry_after = "rate_limited", "13"
    with pytest.raises(ExecutionRateLimited) as raised:
        make(TIMEOUT_SECONDS).run(PROMPT, model, 10)
    assert raised.value.retry_after_seconds == 13.0 and raised.value.retryable
    assert "rate limit" in str(raised.value)


@pytest.mark.parametrize("mode", ["overloaded", "server_error"])
def test_overloaded_and_5xx_are_retryable_provider_unavailable(provider, mode: str) -> None:
    fake, make, model = provider
    fake.mode = mode
    with pytest.raises(ProviderUnavailable) as raised:
        make(TIMEOUT_SECONDS).run(PROMPT, model, 10)
    assert raised.value.retryable
    expected = {"overloaded": 529 if isinstance(fake, FakeAnthropic) else 503, "server_error": 500}[mode]
    assert raised.value.status == expected


@pytest.mark.parametrize("mode", ["bad_key", "bad_request", "garbage", "no_usage"])
def test_refusals_and_garbage_fail_for_good(provider, mode: str) -> None:
    fake, make, model = provider
    fake.mode = mode
    with pytest.raises(ExecutionFailed) as raised:
        make(TIMEOUT_SECONDS).run(PROMPT, model, 10)
    assert not raised.value.retryable
    assert "sk-" not in str(raised.value)  # a key never lands in an error text


@pytest.mark.parametrize("mode", ["hang", "drip"])
def test_no_whole_answer_within_the_deadline_is_timed_out(provider, mode: str) -> None:
    fake, make, model = provider
    fake.mode = mode
    started = time.monotonic()
    with pytest.raises(ExecutionTimedOut) as raised:
        make(0.3).run(PROMPT, model, 10)
    assert time.monotonic() - started < 1.5  # a drip of bytes does not stretch the deadline
    assert raised.value.retryable


def test_a_provider_that_is_down_is_unavailable(provider) -> None:
    fake, make, model = provider
    executor = make(TIMEOUT_SECONDS)
    fake.close()
    with pytest.raises(ProviderUnavailable) as raised:
        executor.run(PROMPT, model, 10)
    assert raised.value.status is None and raised.value.retryable


def test_the_api_key_is_only_asked_on_first_use() -> None:
    asked: list[str] = []
    settings = Settings(executor_backend="providers")
    executor = executor_from_settings(settings, lambda: asked.append("openai") or "k", lambda: asked.append("anthropic") or "k")
    assert executor.run("hello there", "timmy-local", 50).text  # local models stay deterministic
    assert asked == []


def test_routing_picks_the_models_provider_and_refuses_unknown_ones() -> None:
    openai, anthropic = FakeOpenAI(), FakeAnthropic()
    try:
        executor = RoutingExecutor(
            {
                "local": DeterministicExecutor(),
                "openai": OpenAIExecutor(openai.base_url, lambda: "k", TIMEOUT_SECONDS),
                "anthropic": AnthropicExecutor(anthropic.base_url, lambda: "k", TIMEOUT_SECONDS),
            }
        )
        executor.run(PROMPT, "gpt-5-nano", 10)
        executor.run(PROMPT, "claude-sonnet-4-5", 10)
        assert (len(openai.requests), len(anthropic.requests)) == (1, 1)
        with pytest.raises(ExecutionFailed):
            executor.run(PROMPT, "no-such-model", 10)
        with pytest.raises(ExecutionFailed):
            RoutingExecutor({"local": DeterministicExecutor()}).run(PROMPT, "gpt-5", 10)
    finally:
        openai.close()
        anthropic.close()


def test_max_tokens_field_for_older_compatible_servers() -> None:
    fake = FakeOpenAI()
    try:
        result = OpenAIExecutor(fake.base_url, lambda: "k", TIMEOUT_SECONDS, max_tokens_field="max_tokens").run(PROMPT, "gpt-4o-mini", 3)
        assert result.usage.output_tokens == 3 and fake.requests[-1]["body"]["max_tokens"] == 3
        assert "max_completion_tokens" not in fake.requests[-1]["body"]
    finally:
        fake.close()


def test_the_default_backend_is_the_deterministic_executor() -> None:
    executor = executor_from_settings(Settings(), lambda: "k", lambda: "k")
    assert isinstance(executor, DeterministicExecutor)


def test_every_executor_error_says_whether_to_retry() -> None:
    retryable = {
        cls.__name__: cls.retryable for cls in (ExecutionFailed, ExecutionTimedOut, ExecutionRateLimited, ProviderUnavailable, EmptyOutput)
    }
    assert retryable == {
        "ExecutionFailed": False,
        "ExecutionTimedOut": True,
        "ExecutionRateLimited": True,
        "ProviderUnavailable": True,
        "EmptyOutput": False,
    }
    assert all(issubclass(cls, ExecutorError) for cls in (ExecutionFailed, ProviderUnavailable))
