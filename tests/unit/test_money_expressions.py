"""The ledger is the only writer of money expressions: use cases compose its typed operations."""

from __future__ import annotations

from pathlib import Path

FREE_TIER = Path(__file__).resolve().parents[2] / "shared" / "timmy" / "free_tier"


def test_the_free_tier_writes_no_dynamodb_expression_and_reads_not_through_the_store() -> None:
    for source in FREE_TIER.glob("*.py"):
        text = source.read_text()
        assert "Expression" not in text, source.name
        assert "ledger.store" not in text, source.name
