"""Input tokens: an upper bound that is never below the true count, computed without a tokenizer.

Why a bound and not only a tokenizer: Lambda cannot download a vocabulary at run time, Anthropic
publishes no tokenizer for its current models, and loading a vocabulary costs ~0.3 s of a cold
start. So this bound is the rule, and pricing replaces it by an exact count (timmy.pricing.tokenizer,
OpenAI's o200k_base, packaged) only for models with a public tokenizer and only where the input
could move the quote in sats (PricingService.estimate_request_cost).

Why UTF-8 bytes bound it: every provider we sell (OpenAI's o200k/cl100k, Anthropic's) uses a
byte-level BPE, whose every token stands for at least one byte of the text it sees, so a text of N
UTF-8 bytes is never more than N tokens. But a tokenizer may normalise the text first, and
normalising can lengthen it: Anthropic's published tokenizer applies NFKC, which turns U+FDFA
(3 bytes) into 18 characters (15 tokens). So the bound is the longest of the text's UTF-8 forms:
as sent, NFC, NFD, NFKC and NFKD. On top of the text, the chat framing (role markers, message
separators) costs a few tokens per message; FRAMING_TOKENS is a generous bound on it. The price of
the guarantee is an over-estimate of about 4x on English prose (bench/tokens.py measures it on real
prompts); the actual charge is computed on the provider's reported usage, so the user only pays for
the over-estimate in what is held, never in what is charged.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

FRAMING_TOKENS = 32  # chat framing of one user message (+ an optional system message), bounded


NORMALISATION_FORMS: tuple[Literal["NFC", "NFD", "NFKC", "NFKD"], ...] = ("NFC", "NFD", "NFKC", "NFKD")


def utf8_bytes_max(text: str) -> int:
    """The UTF-8 length of `text` in its longest Unicode normalisation (or as sent)."""
    return max(
        len(form.encode("utf-8", errors="surrogatepass")) for form in (text, *(unicodedata.normalize(n, text) for n in NORMALISATION_FORMS))
    )


def input_tokens_upper_bound(request: str, system_prompt: str = "") -> int:
    """At most this many input tokens for `request` (and the executor's `system_prompt`)."""
    if request.isascii() and system_prompt.isascii():  # normalisation leaves ASCII as it is
        return len(request) + len(system_prompt) + FRAMING_TOKENS
    return utf8_bytes_max(request) + utf8_bytes_max(system_prompt) + FRAMING_TOKENS
