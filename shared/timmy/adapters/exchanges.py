"""Adapters of the price-source port for three public exchange APIs (no keys needed).

Each answers the last BTC/USD trade price. Base URLs are settings, so tests point them at local fake
servers. Every call has a timeout; any failure (down, HTTP error, garbage) is a PriceSourceError.
"""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal, InvalidOperation
from typing import Any

from timmy.config import Settings
from timmy.ports.price_source import PriceSource, PriceSourceError

RESPONSE_BYTES_MAX = 65_536
USER_AGENT = "timmy-price-oracle/1"


def _endpoint(base_url: str, path: str) -> str:
    """The URL of an endpoint; only http(s) base URLs are accepted (no file: or custom schemes)."""
    if not base_url.startswith(("https://", "http://")):
        raise ValueError(f"a price source base URL must be http(s), not {base_url!r}")
    return base_url.rstrip("/") + path


def _get_json(url: str, timeout_seconds: float) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310 - http(s) only
            body = response.read(RESPONSE_BYTES_MAX + 1)
    except Exception as error:
        raise PriceSourceError(f"{url}: {error}") from error
    if len(body) > RESPONSE_BYTES_MAX:
        raise PriceSourceError(f"{url}: answer over {RESPONSE_BYTES_MAX} bytes")
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError as error:
        raise PriceSourceError(f"{url}: not JSON") from error


def _price(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise PriceSourceError(f"{where}: price is {type(value).__name__}, not a number")
    try:
        price = Decimal(value)
    except InvalidOperation as error:
        raise PriceSourceError(f"{where}: price {value!r} is not a number") from error
    if not price.is_finite() or price <= 0:
        raise PriceSourceError(f"{where}: price {value!r} is not positive")
    return price


class CoinbaseSource:
    """`GET /v2/prices/BTC-USD/spot` → `{"data": {"amount": "…", "currency": "USD"}}`."""

    name = "coinbase"

    def __init__(self, base_url: str):
        self.url = _endpoint(base_url, "/v2/prices/BTC-USD/spot")

    def fetch_btc_usd(self, timeout_seconds: float) -> Decimal:
        data = _get_json(self.url, timeout_seconds)
        try:
            return _price(data["data"]["amount"], self.name)
        except (KeyError, TypeError) as error:
            raise PriceSourceError(f"{self.name}: unexpected answer shape") from error


class KrakenSource:
    """`GET /0/public/Ticker?pair=XBTUSD` → `{"error": [], "result": {"XXBTZUSD": {"c": ["…", "…"]}}}`."""

    name = "kraken"

    def __init__(self, base_url: str):
        self.url = _endpoint(base_url, "/0/public/Ticker?pair=XBTUSD")

    def fetch_btc_usd(self, timeout_seconds: float) -> Decimal:
        data = _get_json(self.url, timeout_seconds)
        try:
            if data.get("error"):
                raise PriceSourceError(f"{self.name}: {data['error']}")
            ((_pair, ticker),) = data["result"].items()
            return _price(ticker["c"][0], self.name)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise PriceSourceError(f"{self.name}: unexpected answer shape") from error


class BitstampSource:
    """`GET /api/v2/ticker/btcusd/` → `{"last": "…", …}`."""

    name = "bitstamp"

    def __init__(self, base_url: str):
        self.url = _endpoint(base_url, "/api/v2/ticker/btcusd/")

    def fetch_btc_usd(self, timeout_seconds: float) -> Decimal:
        data = _get_json(self.url, timeout_seconds)
        try:
            return _price(data["last"], self.name)
        except (KeyError, TypeError) as error:
            raise PriceSourceError(f"{self.name}: unexpected answer shape") from error


def exchange_sources(settings: Settings) -> list[PriceSource]:
    """The three exchanges, at the base URLs of the settings."""
    return [
        CoinbaseSource(settings.price_coinbase_base_url),
        KrakenSource(settings.price_kraken_base_url),
        BitstampSource(settings.price_bitstamp_base_url),
    ]
