"""The deterministic local executor: a reproducible answer built from the request, no network.

Tokens are counted with the same rule as the estimate's bound (timmy.pricing.tokens, one UTF-8
byte per token at most): the input count is that bound — or, for a model with a public tokenizer,
the exact count plus the framing, as a real provider would report it, and never more than the bound
(the estimate quotes one of the two, so usage never exceeds it); the answer is cut to
`max_output_tokens` UTF-8 bytes, so the output cap is honoured exactly.
"""

from __future__ import annotations

import hashlib

from timmy.metering import TokenUsage
from timmy.ports.executor import EmptyOutput, ExecutionResult
from timmy.pricing.catalogue import default_catalogue
from timmy.pricing.tokens import FRAMING_TOKENS, input_tokens_upper_bound, utf8_bytes_max


def _truncate_utf8(text: str, bytes_max: int) -> str:
    return text.encode("utf-8")[:bytes_max].decode("utf-8", errors="ignore")


def _input_tokens(request: str, model: str) -> int:
    bound = input_tokens_upper_bound(request)
    priced = default_catalogue().models.get(model)
    if priced is None or priced.tokenizer is None:
        return bound
    from timmy.pricing.tokenizer import count_tokens  # OpenAI models only, as the estimate does

    return min(bound, count_tokens(request, priced.tokenizer) + FRAMING_TOKENS)


class DeterministicExecutor:
    """Echoes a digest and the words of the request, reversed: same request, same answer."""

    def run(self, request: str, model: str, max_output_tokens: int) -> ExecutionResult:
        if not request.strip():
            raise EmptyOutput("the request is empty: nothing to answer")
        digest = hashlib.sha256(request.encode("utf-8", errors="surrogatepass")).hexdigest()[:16]
        answer = f"[{model} {digest}] " + " ".join(reversed(request.split()))
        text = _truncate_utf8(answer, max_output_tokens)
        usage = TokenUsage(input_tokens=_input_tokens(request, model), output_tokens=utf8_bytes_max(text))
        return ExecutionResult(text=text, usage=usage)
