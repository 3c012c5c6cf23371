"""The cost of authenticating one request: a NIP-98 verification and a nostr_token verification.

Pure CPU (the NIP-98 replay check adds one conditional PutItem, about one write unit, not timed
here). Run: `make bench` or `.venv/bin/python bench/identity.py`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from timmy.identity.nip98 import HttpRequestFacts, verify_nip98  # noqa: E402
from timmy.identity.nostr import event_id, verify_schnorr  # noqa: E402
from timmy.identity.signer import Keys  # noqa: E402
from timmy.identity.tokens import TokenSigner  # noqa: E402

ROUNDS = 3
DURATION_SECONDS = 0.5


def per_call_us(function: Callable[[], object]) -> float:
    """The best (over ROUNDS) mean time of one call, in microseconds."""
    best = float("inf")
    for _ in range(ROUNDS):
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < DURATION_SECONDS:
            for _ in range(100):
                function()
            calls += 100
        best = min(best, elapsed / calls * 1e6)
    return best


def main() -> None:
    keys = Keys.generate()
    now = int(time.time())
    url = "https://api.example.com/api/estimate?request=hello&model=timmy-local"
    body = b'{"request": "' + b"x" * 1000 + b'"}'
    header = keys.nip98_header(url, "POST", body, created_at=now).split(" ", 1)[1]
    request = HttpRequestFacts(url=url, method="POST", body=body)
    event = keys.nip98_event(url, "POST", body, created_at=now)
    signer = TokenSigner("bench-secret")
    token = signer.issue(keys.pubkey, now + 3600)

    results = {
        "NIP-98 verification (parse, checks, id, BIP-340)": per_call_us(lambda: verify_nip98(header, request, now)),
        "  of which BIP-340 verify": per_call_us(lambda: verify_schnorr(event["pubkey"], bytes.fromhex(event["id"]), event["sig"])),
        "  of which NIP-01 event id": per_call_us(lambda: event_id(event["pubkey"], now, event["kind"], event["tags"], "")),
        "nostr_token verification (HMAC-SHA256)": per_call_us(lambda: signer.verify(token, now)),
        "nostr_token issue": per_call_us(lambda: signer.issue(keys.pubkey, now + 3600)),
    }
    for name, micros in results.items():
        print(f"{name:<52} {micros:9.1f} µs/op  {1e6 / micros:>10,.0f} op/s")
    print("NIP-98 also costs one conditional PutItem (replay guard); a token costs no write.")


if __name__ == "__main__":
    main()
