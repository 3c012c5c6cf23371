"""What a piece of work was quoted and what it used: the value types pricing, the evaluator and
executor ports and their adapters share, at the bottom of the dependency graph (no imports of Timmy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Estimate:
    """The quoted upper bound of one request's cost, at the BTC price it was quoted at."""

    model: str
    input_tokens: int
    output_tokens: int
    usd: Decimal  # the work fee, infra overhead and margin included
    sats: int
    btc_price_usd: Decimal

    def as_dict(self) -> dict[str, str | int]:
        """For storing with a job or a session (USD amounts as strings: never a float)."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "usd": str(self.usd),
            "sats": self.sats,
            "btc_price_usd": str(self.btc_price_usd),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Estimate:
        """The inverse of `as_dict` (what a worker reads back before settling)."""
        return cls(
            model=str(data["model"]),
            input_tokens=int(data["input_tokens"]),
            output_tokens=int(data["output_tokens"]),
            usd=Decimal(str(data["usd"])),
            sats=int(data["sats"]),
            btc_price_usd=Decimal(str(data["btc_price_usd"])),
        )


@dataclass(frozen=True)
class TokenUsage:
    """Tokens a provider reports it used for one request."""

    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.input_tokens < 0 or self.output_tokens < 0:
            raise ValueError(f"token usage cannot be negative: {self}")
