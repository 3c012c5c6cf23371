"""Request limits, in one place: how large a request may be, and how many output tokens it may ask.

The byte and token limits come from the settings (`REQUEST_BYTES_MAX`, `REQUEST_INPUT_TOKENS_MAX`);
`max_output_tokens` is bounded per model by the catalogue; the context window is the model's.
Every message says what to change, because a caller reads it to fix the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from timmy.errors import InvalidInput, PayloadTooLarge
from timmy.pricing.catalogue import Model


@dataclass(frozen=True)
class RequestLimits:
    request_bytes_max: int
    request_input_tokens_max: int

    def check_request(self, request: object) -> str:
        """The request text, if it is a non-blank UTF-8 string within the byte limit."""
        if request is None:
            raise InvalidInput("'request' is required: send the text of the work you want priced", code="missing_request")
        if not isinstance(request, str):
            raise InvalidInput(f"'request' must be a string, not {type(request).__name__}", code="invalid_request")
        try:
            size_bytes = len(request.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidInput("'request' must be valid UTF-8 text (it holds an unpaired surrogate)", code="invalid_encoding") from None
        if not request.strip():
            raise InvalidInput("'request' is empty: send the text of the work you want priced", code="empty_request")
        if size_bytes > self.request_bytes_max:
            raise PayloadTooLarge(
                f"'request' is {size_bytes} bytes; the limit is {self.request_bytes_max} UTF-8 bytes: shorten it",
                code="request_too_large",
            )
        return request

    def check_input_tokens(self, input_tokens: int) -> None:
        if input_tokens > self.request_input_tokens_max:
            raise PayloadTooLarge(
                f"'request' may be up to {input_tokens} input tokens; the limit is {self.request_input_tokens_max}: shorten it",
                code="request_too_large",
            )

    @staticmethod
    def check_max_output_tokens(max_output_tokens: object, model: Model) -> int:
        """`max_output_tokens` as given (1 … the model's maximum), or the model's default."""
        if max_output_tokens is None:
            return model.default_output_tokens
        if isinstance(max_output_tokens, bool) or not isinstance(max_output_tokens, int):
            raise InvalidInput(
                f"'max_output_tokens' must be a whole number from 1 to {model.max_output_tokens} for {model.name}",
                code="invalid_max_output_tokens",
            )
        if max_output_tokens < 1:
            raise InvalidInput(
                f"'max_output_tokens' must be 1 to {model.max_output_tokens} for {model.name}", code="invalid_max_output_tokens"
            )
        if max_output_tokens > model.max_output_tokens:
            # Too large for this model (as the context window is): a 413, the limit depends on the model chosen.
            raise PayloadTooLarge(
                f"'max_output_tokens' is over {model.name}'s maximum: it allows 1 to {model.max_output_tokens}",
                code="max_output_tokens_too_large",
            )
        return max_output_tokens

    @staticmethod
    def check_context_window(input_tokens: int, output_tokens: int, model: Model) -> None:
        """Input and output together must fit the model's context window (413 otherwise)."""
        total = input_tokens + output_tokens
        if total > model.context_window_tokens:
            raise PayloadTooLarge(
                f"the request may need {input_tokens} input + {output_tokens} output tokens, over the "
                f"{model.context_window_tokens}-token context window of {model.name}: shorten the request, "
                "lower max_output_tokens or choose a model with a larger window",
                code="context_window_exceeded",
            )
