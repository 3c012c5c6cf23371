"""The executor the worker uses: one executor per catalogue provider, chosen by the model's provider.

`EXECUTOR_BACKEND=deterministic` (the local default) runs every model on the deterministic local
executor, so the local stack sells the whole catalogue with no key; `providers` sends `openai`
models to the OpenAI-compatible adapter and `anthropic` models to the Anthropic one (`local`
models stay deterministic).
"""

from __future__ import annotations

from collections.abc import Mapping

from timmy.adapters.executor_anthropic import AnthropicExecutor
from timmy.adapters.executor_deterministic import DeterministicExecutor
from timmy.adapters.executor_http import ApiKey
from timmy.adapters.executor_openai import OpenAIExecutor
from timmy.config import Settings
from timmy.errors import InvalidInput
from timmy.ports.executor import ExecutionFailed, ExecutionResult, Executor
from timmy.pricing.catalogue import Catalogue, default_catalogue


class RoutingExecutor:
    """Runs each request on the executor of its model's provider."""

    def __init__(self, executors: Mapping[str, Executor], catalogue: Catalogue | None = None):
        self.executors = dict(executors)
        self.catalogue = catalogue or default_catalogue()

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        try:
            provider = self.catalogue.get(model).provider
        except InvalidInput as error:
            raise ExecutionFailed(f"no executor for unknown model {model!r}") from error
        executor = self.executors.get(provider)
        if executor is None:
            raise ExecutionFailed(f"no executor is configured for provider {provider!r} (model {model!r})")
        return executor.run(request, model, max_output_tokens)


def executor_from_settings(settings: Settings, openai_api_key: ApiKey, anthropic_api_key: ApiKey) -> Executor:
    """The worker's executor. The key callables are asked on a provider's first request only
    (`timmy_http.secrets.openai_api_key` / `anthropic_api_key`, bound to the settings)."""
    deterministic = DeterministicExecutor()
    if settings.executor_backend == "deterministic":
        return deterministic
    return RoutingExecutor(
        {
            "local": deterministic,
            "openai": OpenAIExecutor(
                settings.openai_base_url, openai_api_key, settings.executor_timeout_seconds, settings.openai_max_tokens_field
            ),
            "anthropic": AnthropicExecutor(settings.anthropic_base_url, anthropic_api_key, settings.executor_timeout_seconds),
        }
    )
