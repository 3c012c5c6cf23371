"""Timmy's domain package: money, pricing, the ledger, the free tier and identity.

Nothing in here imports Lambda, Powertools or a handler: the arrows point inward.
"""

__version__ = "0.1.0"
