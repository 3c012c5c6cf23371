"""Pricing: the model catalogue, request limits, the BTC/USD oracle and the `PricingService`."""
