"""How far above the true count is the input-token bound? (timmy.pricing.tokens)

Prints, for a sample of real prompts (bench/prompts.jsonl: questions, code, JSON, eight languages,
emoji), the bound Timmy charges against and the true token count of OpenAI's o200k_base and
cl100k_base encodings, the ratio bound / true, and checks the bound is never below the truth.

The true counts are stored in prompts.jsonl, because the vocabularies cannot be downloaded at run
time. They were recorded with `--record RANKS_DIR`, a plain-Python byte-pair encoder fed the rank
files that the npm package js-tiktoken ships (`npm pack js-tiktoken@1.0.21`, then
`package/dist/ranks`). Anthropic publishes no tokenizer for its current models, so there is no
Claude column; its tokenizer is a byte-level BPE too, which is all the bound relies on.

Run: .venv/bin/python bench/tokens.py
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from timmy.pricing.tokens import FRAMING_TOKENS, input_tokens_upper_bound  # noqa: E402

PROMPTS_PATH = Path(__file__).with_name("prompts.jsonl")
ENCODINGS = ("o200k_base", "cl100k_base")


def load_prompts() -> list[dict[str, object]]:
    with open(PROMPTS_PATH, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# --- recording true counts (a byte-pair encoder, as tiktoken's, in plain Python) --------------


class ByteLevelBpe:
    def __init__(self, ranks_file: Path):
        text = ranks_file.read_text(encoding="utf-8").strip()
        data = json.loads(text.removeprefix("export default ").rstrip(";"))
        import regex  # the pre-tokenizer uses \p{…} classes

        self.pattern = regex.compile(data["pat_str"])
        self.ranks: dict[bytes, int] = {}
        for line in data["bpe_ranks"].split("\n"):
            if not line:
                continue
            _, offset, *tokens = line.split(" ")
            for index, token in enumerate(tokens):
                self.ranks[base64.b64decode(token)] = int(offset) + index

    def count(self, text: str) -> int:
        return sum(self._piece(match.group(0).encode("utf-8")) for match in self.pattern.finditer(text) if match.group(0))

    def _piece(self, piece: bytes) -> int:
        if piece in self.ranks:
            return 1
        parts = [piece[i : i + 1] for i in range(len(piece))]
        while len(parts) > 1:
            best, best_rank = -1, None
            for i in range(len(parts) - 1):
                rank = self.ranks.get(parts[i] + parts[i + 1])
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = i, rank
            if best < 0:
                break
            parts[best : best + 2] = [parts[best] + parts[best + 1]]
        return len(parts)


def write_encoding(ranks_dir: Path, name: str = "o200k_base") -> None:
    """Package js-tiktoken's rank data for timmy.pricing.tokenizer: base64 lines in rank order, gzipped."""
    import gzip
    import hashlib

    text = (ranks_dir / f"{name}.js").read_text(encoding="utf-8").strip()
    data = json.loads(text.removeprefix("export default ").rstrip(";"))
    ranks: dict[bytes, int] = {}
    for line in data["bpe_ranks"].split("\n"):
        if line:
            _, offset, *tokens = line.split(" ")
            ranks.update({base64.b64decode(token): int(offset) + index for index, token in enumerate(tokens)})
    ordered = sorted(ranks, key=ranks.__getitem__)
    assert [ranks[token] for token in ordered] == list(range(len(ordered))), "ranks must be contiguous from 0"
    packed = gzip.compress(b"\n".join(base64.b64encode(token) for token in ordered), compresslevel=9, mtime=0)
    target = ROOT / "shared" / "timmy" / "pricing" / "encodings"
    (target / f"{name}.ranks.gz").write_bytes(packed)
    spec = {"name": name, "pat_str": data["pat_str"], "tokens": len(ordered), "ranks_sha256": hashlib.sha256(packed).hexdigest()}
    (target / f"{name}.json").write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {name}: {len(ordered)} tokens, {len(packed)} bytes")


def record(ranks_dir: Path) -> None:
    encoders = {name: ByteLevelBpe(ranks_dir / f"{name}.js") for name in ENCODINGS}
    rows = load_prompts()
    lines = []
    for row in rows:
        prompt = str(row["prompt"])
        counts = {f"{name}_tokens": encoder.count(prompt) for name, encoder in encoders.items()}
        lines.append(json.dumps({"prompt": prompt, **counts}, ensure_ascii=False) + "\n")
    PROMPTS_PATH.write_text("".join(lines), encoding="utf-8")
    print(f"recorded true counts of {len(rows)} prompts in {PROMPTS_PATH}")


# --- the report -----------------------------------------------------------------------------------


def report() -> int:
    from timmy.pricing.tokenizer import count_tokens

    rows = load_prompts()
    print(
        f"input-token bound = UTF-8 bytes of the longest normalisation + {FRAMING_TOKENS} framing tokens; {len(rows)} prompts from {PROMPTS_PATH.name}"
    )
    failures = 0
    for name in ENCODINGS:
        key = f"{name}_tokens"
        ratios, text_ratios = [], []
        for row in rows:
            prompt, true_count = str(row["prompt"]), int(str(row[key]))
            bound = input_tokens_upper_bound(prompt)
            if bound - FRAMING_TOKENS < true_count:
                failures += 1
                print(f"  BOUND BELOW TRUTH ({name}): {bound} < {true_count}: {prompt[:60]!r}")
            ratios.append(bound / true_count)
            text_ratios.append((bound - FRAMING_TOKENS) / true_count)
        print(
            f"{name:12} bound/true  median {statistics.median(ratios):.2f}x  mean {statistics.fmean(ratios):.2f}x  "
            f"min {min(ratios):.2f}x  max {max(ratios):.2f}x   |  bytes/true (no framing) median {statistics.median(text_ratios):.2f}x  "
            f"min {min(text_ratios):.2f}x  max {max(text_ratios):.2f}x"
        )
    exact = [(count_tokens(str(row["prompt"]), "o200k_base") + FRAMING_TOKENS) / int(str(row["o200k_base_tokens"])) for row in rows]
    print(
        f"o200k_base   exact count + framing / true  median {statistics.median(exact):.2f}x  max {max(exact):.2f}x (the framing dominates short prompts)"
    )
    total_true = sum(int(str(row["o200k_base_tokens"])) for row in rows)
    total_bound = sum(input_tokens_upper_bound(str(row["prompt"])) for row in rows)
    print(f"whole sample (o200k_base): {total_bound} bound vs {total_true} true tokens = {total_bound / total_true:.2f}x")
    print("bound never below the true count" if not failures else f"{failures} prompts where the bound is below the truth")
    failures += report_quotes(rows)
    report_cold_load()
    return 1 if failures else 0


QUOTE_MODELS = ("gpt-5", "gpt-5-mini", "gpt-4o-mini")
LONG_PROMPT_REPEATS = 40  # a long request: the sample's prompts repeated (~30 KB)


def report_quotes(rows: list[dict[str, object]]) -> int:
    """Quoted ÷ true sats with the output at its cap, before (byte bound) and after (exact counts
    where they move the quote). "True" prices the o200k count of the text at the model's prices (the
    provider adds a few framing tokens, so the real ratio is a little lower)."""
    from decimal import Decimal

    from timmy.clock import FixedClock
    from timmy.pricing.limits import RequestLimits
    from timmy.pricing.oracle import FixedPriceOracle
    from timmy.pricing.service import PricingConfig, PricingService
    from timmy.pricing.tokenizer import count_tokens

    pricing = PricingService(
        PricingConfig(Decimal("20"), Decimal("30"), "timmy-local", RequestLimits(65_536, 65_536)),
        FixedPriceOracle(Decimal("100000"), FixedClock()),
    )
    long_prompt = "\n".join(str(row["prompt"]) for row in rows) * (LONG_PROMPT_REPEATS // 10)
    samples = [("sample prompts", [str(row["prompt"]) for row in rows]), ("one long prompt", [long_prompt[:30_000]])]
    failures = 0
    print("quoted ÷ true sats, output at the model's default cap (before: byte bound; after: exact count where it moves the quote):")
    for model in QUOTE_MODELS:
        for label, prompts in samples:
            before, after, true = 0, 0, 0
            for prompt in prompts:
                quote = pricing.estimate_request_cost(prompt, model)
                true_tokens = count_tokens(prompt, "o200k_base")
                failures += quote.input_tokens < true_tokens
                true += pricing.work_fee_usd(true_tokens, quote.output_tokens, model)
                after += quote.usd
                before += pricing.work_fee_usd(input_tokens_upper_bound(prompt), quote.output_tokens, model)
            print(f"  {model:12} {label:16} before {before / true:.2f}x  after {after / true:.2f}x")
    return failures


def report_cold_load() -> None:
    """What the first exact count costs a fresh interpreter (a cold Lambda environment)."""
    import subprocess
    import time

    env_path = f"{ROOT}:{ROOT / 'shared'}"
    code = "import timmy.pricing.tokenizer as t; t.count_tokens('hello', 'o200k_base')"
    base = "import timmy.pricing.tokenizer"
    samples = {}
    for name, snippet in (("first count", code), ("module only", base)):
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", snippet], check=True, env={"PYTHONPATH": env_path})
            timings.append(time.perf_counter() - started)
        samples[name] = statistics.median(timings)
    print(
        f"cold load of o200k_base (import tiktoken + ranks + tables): {1000 * (samples['first count'] - samples['module only']):.0f} ms (median of 3)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", type=Path, metavar="RANKS_DIR", help="recount the true tokens with js-tiktoken's rank files")
    parser.add_argument("--write-encoding", type=Path, metavar="RANKS_DIR", help="package o200k_base for timmy.pricing.tokenizer")
    args = parser.parse_args()
    if args.write_encoding:
        write_encoding(args.write_encoding)
    if args.record:
        record(args.record)
    return report()


if __name__ == "__main__":
    raise SystemExit(main())
