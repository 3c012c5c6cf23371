"""Issue 9's findings, one test each: every answer equals what is held, every amount is a bounded
whole number of sats, ids cannot collide, and each odd input is a typed error."""

from __future__ import annotations

import contextlib
import threading
from decimal import Decimal

import pytest

from timmy.clock import FixedClock
from timmy.errors import Conflict, InvalidInput
from timmy.free_tier.service import FreeTierService
from timmy.identity.caller import Caller
from timmy.ledger.invariants import audit_store
from timmy.ledger.ledger import Ledger
from timmy.ledger.model import SATS_MAX

ELITE = Caller("e" * 64, "elite")
TRUSTED = Caller("a" * 64, "trusted")


def test_twins_racing_for_one_request_answer_what_is_held(free_tier: FreeTierService, store: object) -> None:
    def twin(index: int, request: str, barrier: threading.Barrier, answers: list[tuple[object, object]]) -> None:
        barrier.wait()
        with contextlib.suppress(Conflict):  # a twin holding more than this one asked for: already_applied
            answers.append(free_tier.decide_and_reserve(ELITE, 10 * (index + 1), request))

    for round_ in range(6):
        barrier = threading.Barrier(8)
        answers: list[tuple[object, object]] = []
        threads = [threading.Thread(target=twin, args=(i, f"same-{round_}", barrier, answers)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        held = free_tier.pool_status().reserved_sats
        for decision, reservation in answers:
            assert reservation is not None
            assert reservation.amount_sats == decision.absorb_sats == held  # type: ignore[attr-defined]
        free_tier.release_reservation(ELITE.pubkey, f"same-{round_}")
    assert audit_store(store).ok


@pytest.mark.parametrize("amount", [Decimal("5.5"), 5.0, True, -1, SATS_MAX + 1, 10**38, "5", None])
def test_every_amount_entering_the_domain_is_a_bounded_int(free_tier: FreeTierService, amount: object) -> None:
    _, reservation = free_tier.decide_and_reserve(TRUSTED, 30, "req-1")
    assert reservation is not None
    calls = [
        lambda: free_tier.record_grant(TRUSTED.pubkey, "req-1", amount, 30),  # type: ignore[arg-type]
        lambda: free_tier.record_grant(TRUSTED.pubkey, "req-1", 5, amount),  # type: ignore[arg-type]
        lambda: free_tier.decide(TRUSTED, amount),  # type: ignore[arg-type]
        lambda: free_tier.decide_and_reserve(TRUSTED, amount, "req-2"),  # type: ignore[arg-type]
        lambda: free_tier.reserve_partial_grant(TRUSTED, "req-3", amount),  # type: ignore[arg-type]
        lambda: free_tier.credit(amount, "charge-1"),  # type: ignore[arg-type]
        lambda: free_tier.topup(amount, transfer_id="topup-1"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(InvalidInput):
            call()
    free_tier.record_grant(TRUSTED.pubkey, "req-1", 5, 30)
    assert free_tier.pool_status().balance_sats == 2_000 - 5


def test_the_largest_top_up_keeps_every_read_working(free_tier: FreeTierService, store: object) -> None:
    free_tier.topup(SATS_MAX - 2_000, transfer_id="topup-max")
    assert free_tier.pool_status().balance_sats == SATS_MAX
    assert free_tier.decide(TRUSTED, 10).serve == "free"
    assert audit_store(store).ok


def test_a_separator_in_the_pubkey_or_hash_cannot_share_a_hold(free_tier: FreeTierService) -> None:
    for bad in ["aa:bb", "a" * 63 + ":", None, "a" * 10_000, "g" * 64, 7]:
        with pytest.raises(InvalidInput):
            free_tier.decide_and_reserve(Caller(bad, "elite"), 10, "x")  # type: ignore[arg-type]
    # A pubkey is always 64 hex digits, so 'a…a' + 'bb:x' and 'a…ab' + 'x' are different holds.
    one, two = Caller("a" * 64, "elite"), Caller("a" * 63 + "b", "elite")
    _, first = free_tier.decide_and_reserve(one, 10, "b:x")
    _, second = free_tier.decide_and_reserve(two, 20, "x")
    assert first is not None and second is not None and first.transfer_id != second.transfer_id
    assert free_tier.pool_status().reserved_sats == 30


def test_upper_case_hex_is_the_same_identity_and_budget(free_tier: FreeTierService) -> None:
    lower, upper = Caller("ab" * 32, "established"), Caller("AB" * 32, "established")  # budget 50
    decision, reservation = free_tier.decide_and_reserve(lower, 50, "r1")
    assert decision.serve == "free" and reservation is not None
    assert free_tier.decide_and_reserve(upper, 10, "r2")[0].serve == "gate"
    grant = free_tier.record_grant(upper.pubkey, "r1", 20, 50)  # settles the lower-case hold
    assert grant.pubkey == lower.pubkey
    usage = free_tier.usage_today(upper.pubkey, "established")
    assert (usage.absorbed_sats, usage.reserved_sats) == (20, 0)


def test_a_release_that_loses_to_a_grant_says_so(free_tier: FreeTierService, monkeypatch: pytest.MonkeyPatch) -> None:
    free_tier.decide_and_reserve(TRUSTED, 40, "req-1")
    real_release = free_tier._release

    def grant_first(hold: object) -> bool:
        free_tier.record_grant(TRUSTED.pubkey, "req-1", 25, 40)  # the grant wins the race
        return real_release(hold)  # type: ignore[arg-type]

    monkeypatch.setattr(free_tier, "_release", grant_first)
    with pytest.raises(Conflict) as raised:
        free_tier.release_reservation(TRUSTED.pubkey, "req-1")
    assert raised.value.code == "reservation_settled"
    assert free_tier.pool_status().balance_sats == 2_000 - 25


def test_absorbing_nothing_answers_the_same_on_a_retry(free_tier: FreeTierService) -> None:
    free_tier.decide_and_reserve(TRUSTED, 40, "req-1")
    first = free_tier.record_grant(TRUSTED.pubkey, "req-1", 0, 40)
    assert free_tier.record_grant(TRUSTED.pubkey, "req-1", 0, 40) == first
    with pytest.raises(Conflict):  # but claiming sats of a released hold is still refused
        free_tier.record_grant(TRUSTED.pubkey, "req-1", 10, 40)


def test_a_zero_estimate_is_gated_for_new_and_never_a_zero_hold(free_tier: FreeTierService) -> None:
    assert free_tier.decide(Caller("c" * 64, "new"), 0).serve == "gate"
    with pytest.raises(InvalidInput):
        free_tier.decide_and_reserve(Caller("c" * 64, "new"), 0, "req-0")
    with pytest.raises(InvalidInput):
        free_tier.decide_and_reserve(TRUSTED, 0, "req-0")
    assert free_tier.pool_status().reserved_sats == 0


def test_request_hashes_are_bounded_so_their_hold_id_fits(free_tier: FreeTierService) -> None:
    for request in ["h" * 128, "", None]:
        with pytest.raises(InvalidInput):
            free_tier.decide_and_reserve(TRUSTED, 10, request)  # type: ignore[arg-type]
    _, held = free_tier.decide_and_reserve(TRUSTED, 10, "h" * 127)
    assert held is not None and len(held.transfer_id) == 200


def test_unknown_tiers_and_negative_credits_are_typed_errors(free_tier: FreeTierService) -> None:
    with pytest.raises(InvalidInput):
        free_tier.decide(Caller("a" * 64, "emperor"), 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        free_tier.decide(TRUSTED, -1)
    with pytest.raises(InvalidInput):
        free_tier.credit(-100, "charge-1")


def test_a_top_up_names_its_transfer_so_a_retry_books_once(free_tier: FreeTierService, clock: FixedClock) -> None:
    with pytest.raises(TypeError):
        free_tier.topup(100)  # type: ignore[call-arg]
    free_tier.topup(100, transfer_id="t-1")
    free_tier.topup(100, transfer_id="t-1")  # the retry after a lost answer
    assert free_tier.pool_status().balance_sats == 2_100


def test_the_ledger_itself_refuses_fractional_and_huge_amounts(ledger: Ledger) -> None:
    for amount in [Decimal("5.5"), SATS_MAX + 1, True]:
        with pytest.raises(InvalidInput):
            ledger.create_transfer("t", "operator-equity", "operator-revenue", amount, "test")  # type: ignore[arg-type]


def test_a_hold_settled_after_midnight_counts_on_its_reservation_day_everywhere(free_tier: FreeTierService, clock: FixedClock) -> None:
    clock.current = 1_790_035_190.0  # 2026-09-21 23:59:50 UTC
    free_tier.decide_and_reserve(TRUSTED, 40, "late")
    clock.advance(20)  # 00:00:10, the next UTC day
    free_tier.record_grant(TRUSTED.pubkey, "late", 30, 40)
    today = free_tier.pool_status()  # GET /api/pool: the figures of the settling day are untouched
    assert (today.absorbed_today_sats, today.grants_today, today.balance_sats) == (0, 0, 2_000 - 30)
    assert free_tier.grants(None)["grants"] == []
    (row,) = free_tier.grants("2026-09-21")["grants"]
    assert (row["day"], row["absorbed_sats"]) == ("2026-09-21", 30)
    assert free_tier.usage_today(TRUSTED.pubkey, "trusted").absorbed_sats == 0  # today's budget is whole
    clock.advance(-20)
    yesterday = free_tier.pool_status()
    assert (yesterday.absorbed_today_sats, yesterday.grants_today) == (30, 1)
    assert free_tier.usage_today(TRUSTED.pubkey, "trusted").absorbed_sats == 30


def test_a_blocked_identity_has_no_budget_left_in_the_domain(free_tier: FreeTierService) -> None:
    assert free_tier.usage_today(TRUSTED.pubkey, "trusted").remaining_sats == 200
    assert free_tier.usage_today(TRUSTED.pubkey, "trusted", blocked=True).remaining_sats == 0


def test_a_lost_race_is_a_typed_outcome_naming_what_stopped_it(free_tier: FreeTierService, ledger: Ledger) -> None:
    from timmy.ledger.ledger import ConditionFailed, Limit, Refused

    free_tier.ensure_seeded()
    batch = ledger.batch()
    batch.bounded_counter("someone:today", ("COUNTER#x", "DAY"), {"used_sats": 60}, bound=("used_sats", 50))
    batch.transfer("pool-seed", "operator-equity", "pool", 1, "pool_seed")
    batch.transfer("too-much", "pool", "operator-revenue", 5_000, "test")
    with pytest.raises(ConditionFailed) as failed:
        ledger.commit(batch)
    assert set(failed.value.refused) == {
        Refused(Limit.BOUND, "someone:today"),
        Refused(Limit.TRANSFER_EXISTS, "pool-seed"),
        Refused(Limit.OVERDRAFT, "pool"),
    }
    assert failed.value.ids(Limit.OVERDRAFT) == ["pool"]
