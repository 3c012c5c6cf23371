"""Pricing: the model catalogue, request limits, the BTC/USD oracle and the `PricingService`."""

from timmy.metering import Estimate, TokenUsage
from timmy.ports.price_source import PriceOracle, PriceQuote
from timmy.pricing.catalogue import Catalogue, Model, default_catalogue, load_catalogue
from timmy.pricing.limits import RequestLimits
from timmy.pricing.oracle import FixedPriceOracle
from timmy.pricing.service import PricingConfig, PricingService

__all__ = [
    "Catalogue",
    "Estimate",
    "FixedPriceOracle",
    "Model",
    "PriceOracle",
    "PriceQuote",
    "PricingConfig",
    "PricingService",
    "RequestLimits",
    "TokenUsage",
    "default_catalogue",
    "load_catalogue",
]
