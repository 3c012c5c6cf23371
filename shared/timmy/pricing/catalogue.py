"""The model catalogue: which models Timmy sells and at what published price (catalogue.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from timmy.errors import InvalidInput

CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")
TOKENS_PER_PRICE_UNIT = 1_000_000  # catalogue prices are USD per million tokens


@dataclass(frozen=True)
class Model:
    """One sellable model and its published prices."""

    name: str
    provider: str
    input_usd_per_million_tokens: Decimal
    output_usd_per_million_tokens: Decimal
    default_output_tokens: int
    max_output_tokens: int
    context_window_tokens: int
    prices_date: str
    tokenizer: str | None = None  # a packaged public encoding (timmy.pricing.tokenizer), or None: the bound

    def __post_init__(self) -> None:
        assert self.input_usd_per_million_tokens >= 0 and self.output_usd_per_million_tokens >= 0, self.name
        assert 1 <= self.default_output_tokens <= self.max_output_tokens < self.context_window_tokens, self.name


class Catalogue:
    """The models by name, in catalogue order."""

    def __init__(self, models: list[Model]):
        if not models:
            raise ValueError("the catalogue has no models")
        self.models = {model.name: model for model in models}

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> Model:
        """The model called `name`; an unknown name is a 400 that lists the known ones."""
        model = self.models.get(name)
        if model is None:
            raise InvalidInput(
                f"unknown model {name!r}; use one of: {', '.join(self.models)}",
                code="unknown_model",
                details={"known_models": self.names()},
            )
        return model


def _model(entry: dict[str, object]) -> Model:
    return Model(
        name=str(entry["name"]),
        provider=str(entry["provider"]),
        input_usd_per_million_tokens=Decimal(str(entry["input_usd_per_million_tokens"])),
        output_usd_per_million_tokens=Decimal(str(entry["output_usd_per_million_tokens"])),
        default_output_tokens=int(str(entry["default_output_tokens"])),
        max_output_tokens=int(str(entry["max_output_tokens"])),
        context_window_tokens=int(str(entry["context_window_tokens"])),
        prices_date=str(entry["prices_date"]),
        tokenizer=str(entry["tokenizer"]) if entry.get("tokenizer") else None,
    )


def load_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """Read a catalogue file; prices are strings in it so that no float ever holds one."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle, parse_float=Decimal)
    return Catalogue([_model(entry) for entry in data["models"]])


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The packaged catalogue, read once per cold start."""
    return load_catalogue()
