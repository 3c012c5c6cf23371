"""Exact token counts for models whose tokenizer is public (OpenAI's o200k_base), offline.

The vocabulary ships in `encodings/` (its ranks, base64 lines in rank order, gzipped, 1.1 MB; made
from the rank data of the npm package js-tiktoken by `bench/tokens.py --write-encoding`; the
SHA-256 is checked on load) and `tiktoken` does the byte-pair encoding. Loading costs ~0.3 s
(tiktoken's import ~20 ms, the ranks ~80 ms, tiktoken building its tables ~200 ms), so nothing here
is imported at cold start: pricing asks for an exact count only when it moves a quote
(timmy.pricing.service), and the first such request of an environment pays the load once.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

ENCODINGS_DIR = Path(__file__).with_name("encodings")


def _ranks_path(name: str) -> Path:
    return ENCODINGS_DIR / f"{name}.ranks.gz"


@lru_cache(maxsize=2)
def encoding(name: str) -> Any:
    """The tiktoken Encoding `name` (e.g. "o200k_base"), loaded from the packaged files once."""
    import tiktoken  # only the paths that count exactly pay this import

    spec = json.loads((ENCODINGS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    packed = _ranks_path(name).read_bytes()
    if hashlib.sha256(packed).hexdigest() != spec["ranks_sha256"]:
        raise RuntimeError(f"the packaged {name} ranks do not match their checksum")
    lines = gzip.decompress(packed).split(b"\n")
    ranks = dict(zip(map(binascii.a2b_base64, lines), range(len(lines)), strict=True))
    return tiktoken.Encoding(name=name, pat_str=spec["pat_str"], mergeable_ranks=ranks, special_tokens={})


def count_tokens(text: str, encoding_name: str) -> int:
    """The tokens of `text` as plain text (a special-token string in it counts as its text, as the
    chat APIs count a user message's content)."""
    return len(encoding(encoding_name).encode_ordinary(text))
