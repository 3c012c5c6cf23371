"""The free-tier decision as a pure function (contract section 3), every branch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from timmy.free_tier.decision import decide_from
from timmy.identity.caller import Caller

TRUSTED = Caller("a" * 64, "trusted")


@pytest.mark.parametrize(
    ("estimate", "budget", "used", "pool", "expected"),
    [
        (10, 200, 0, 1_000, ("free", 10, 0)),
        (10, 200, 190, 1_000, ("free", 10, 0)),
        (10, 200, 195, 1_000, ("partial", 5, 5)),
        (10, 200, 0, 4, ("partial", 4, 6)),
        (10, 200, 200, 1_000, ("gate", 0, 10)),
        (10, 200, 250, 1_000, ("gate", 0, 10)),  # a budget lowered mid-day
        (10, 200, 0, 0, ("gate", 0, 10)),
        (10, 0, 0, 1_000, ("gate", 0, 10)),
    ],
)
def test_absorbable_is_the_least_of_estimate_budget_left_and_pool(
    estimate: int, budget: int, used: int, pool: int, expected: tuple[str, int, int]
) -> None:
    decision = decide_from(TRUSTED, estimate, budget, used, pool)
    assert (decision.serve, decision.absorb_sats, decision.charge_sats) == expected


def test_anonymous_and_blocked_callers_are_gated_whatever_the_budget() -> None:
    assert decide_from(None, 5, 1_000, 0, 1_000).serve == "gate"
    assert decide_from(Caller("b" * 64, "elite", blocked=True), 5, 1_000, 0, 1_000).serve == "gate"


@given(st.integers(0, 10_000), st.integers(0, 5_000), st.integers(0, 6_000), st.integers(0, 20_000))
def test_a_decision_never_absorbs_more_than_any_limit(estimate: int, budget: int, used: int, pool: int) -> None:
    decision = decide_from(TRUSTED, estimate, budget, used, pool)
    assert decision.absorb_sats + decision.charge_sats == estimate
    assert 0 <= decision.absorb_sats <= min(estimate, max(0, budget - used), pool)
    # A tier without budget is gated, even for a 0-sat estimate; otherwise free means covered.
    assert (decision.serve == "free") == (decision.absorb_sats == estimate and budget > 0)
