"""usd_to_sats: ceil, never 0 for non-free work, Decimal only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timmy.money import SATS_PER_BTC, usd_to_sats


def test_exact_amounts_are_not_rounded() -> None:
    assert usd_to_sats(Decimal("1"), Decimal("100000")) == 1_000
    assert usd_to_sats(Decimal("100000"), Decimal("100000")) == SATS_PER_BTC


def test_fractions_of_a_sat_round_up() -> None:
    assert usd_to_sats(Decimal("0.0000001"), Decimal("100000")) == 1
    assert usd_to_sats(Decimal("1.000001"), Decimal("100000")) == 1_001
    # 1/3 of a sat's worth and 2/3: both charge one whole sat
    assert usd_to_sats(Decimal("0.001"), Decimal("300000000")) == 1


def test_free_work_is_zero_sats() -> None:
    assert usd_to_sats(Decimal("0"), Decimal("100000")) == 0


@pytest.mark.parametrize(("usd", "btc"), [(0.5, Decimal("1")), (Decimal("0.5"), 100000.0), (1, Decimal("1"))])
def test_floats_and_ints_are_refused(usd: object, btc: object) -> None:
    with pytest.raises(TypeError):
        usd_to_sats(usd, btc)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("usd", "btc"),
    [(Decimal("-1"), Decimal("1")), (Decimal("1"), Decimal("0")), (Decimal("NaN"), Decimal("1")), (Decimal("1"), Decimal("Infinity"))],
)
def test_nonsense_amounts_are_refused(usd: Decimal, btc: Decimal) -> None:
    with pytest.raises(ValueError):
        usd_to_sats(usd, btc)


decimals = st.decimals(min_value=Decimal("0.000000000001"), max_value=Decimal("100000"), allow_nan=False, allow_infinity=False, places=12)
prices = st.decimals(min_value=Decimal("1000"), max_value=Decimal("10000000"), allow_nan=False, allow_infinity=False, places=2)


@given(decimals, prices)
def test_sats_cover_the_usd_and_never_by_a_whole_sat_more(usd: Decimal, btc: Decimal) -> None:
    sats = usd_to_sats(usd, btc)
    assert isinstance(sats, int) and sats >= 1
    exact = usd * SATS_PER_BTC / btc
    assert sats >= exact  # never rounded down
    assert sats - 1 < exact or sats == 1  # the smallest whole number of sats that covers it
