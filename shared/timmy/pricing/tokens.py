"""Input tokens: an upper bound that is never below the true count, computed without a tokenizer.

Why a bound and not a tokenizer: Lambda cannot download a vocabulary at run time, Anthropic publishes
no tokenizer for its current models, and shipping one vocabulary per provider in the layer would
cost cold-start time for an answer we only need to bound.

Why UTF-8 bytes bound it: every provider we sell (OpenAI's o200k/cl100k, Anthropic's) uses a
byte-level BPE, whose every token stands for at least one byte of the text, so a text of N UTF-8
bytes is never more than N tokens. On top of the text, the chat framing (role markers, message
separators) costs a few tokens per message; FRAMING_TOKENS is a generous bound on it. The price of
the guarantee is an over-estimate of about 4x on English prose (bench/tokens.py measures it on real
prompts); the actual charge is computed on the provider's reported usage, so the user only pays for
the over-estimate in what is held, never in what is charged.
"""

from __future__ import annotations

FRAMING_TOKENS = 32  # chat framing of one user message (+ an optional system message), bounded


def input_tokens_upper_bound(request: str, system_prompt: str = "") -> int:
    """At most this many input tokens for `request` (and the executor's `system_prompt`)."""
    return len(request.encode("utf-8")) + len(system_prompt.encode("utf-8")) + FRAMING_TOKENS
