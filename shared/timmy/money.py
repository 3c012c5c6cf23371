"""Sats and USD: all money is integer sats; USD is `Decimal`; no float ever touches either.

This is the one place that turns USD into sats (contract section 1).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, localcontext

SATS_PER_BTC = 100_000_000
# Every amount in the domain is a whole number of sats from 0 to this bound: all the bitcoin
# there will ever be (16 digits), far inside DynamoDB's 38 significant digits, so no sum of
# amounts the ledger keeps can round when boto3 reads it back (`ledger.model.require_sats`).
SATS_MAX = 21_000_000 * SATS_PER_BTC
# Enough digits that no product or quotient of our prices is ever rounded before the final ceil.
_PRECISION_DIGITS = 60


def usd_to_sats(usd: Decimal, btc_usd: Decimal) -> int:
    """`ceil(usd / btc_usd * 100_000_000)`: never rounded down, and at least 1 sat for non-free work.

    Zero USD (free work) is 0 sats. Floats are refused: they cannot carry money exactly.
    """
    if not isinstance(usd, Decimal) or not isinstance(btc_usd, Decimal):
        raise TypeError("usd_to_sats takes Decimal amounts, never floats")
    if not usd.is_finite() or usd < 0:
        raise ValueError(f"a USD amount must be finite and >= 0, not {usd}")
    if not btc_usd.is_finite() or btc_usd <= 0:
        raise ValueError(f"a BTC/USD price must be finite and > 0, not {btc_usd}")
    if usd == 0:
        return 0
    with localcontext() as context:
        context.prec = _PRECISION_DIGITS
        # Ceiling rounding on the division too: an inexact quotient is rounded up, never down.
        context.rounding = ROUND_CEILING
        sats = (usd * SATS_PER_BTC / btc_usd).to_integral_value(rounding=ROUND_CEILING)
    return max(1, int(sats))
