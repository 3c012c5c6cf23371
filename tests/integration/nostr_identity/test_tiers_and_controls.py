"""Tiers follow paid history (booked with record_paid_action inside store.transact), the operator's
pins and blocks override them, and the estimate shows the matching free-tier decision."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.estimate_http import http_event, invoke
from timmy.clock import FixedClock
from timmy.identity import tiers
from timmy.identity.signer import Keys
from timmy_http.services import Services

from .test_identity_handlers import ADMIN, me, token_for

DAY = 86_400


def pay(services: Services, pubkey: str, sats: int, times: int = 1) -> None:
    for _ in range(times):
        services.store.transact([tiers.record_paid_action(pubkey, sats, services.clock.now())])


def admin_put(handlers: dict[str, Any], pubkey: str, body: str) -> tuple[int, dict[str, Any]]:
    return invoke(handlers["admin"], http_event("PUT", f"/api/admin/identities/{pubkey}", body=body, headers=ADMIN))


def estimate_identity(handlers: dict[str, Any], token: str) -> dict[str, Any]:
    if "estimate" not in handlers:
        pytest.skip("functions/estimate/app.py does not exist yet")
    status, body = invoke(handlers["estimate"], http_event("GET", "/api/estimate", query={"request": "say hi", "nostr_token": token}))
    assert status == 200, body
    return body


def test_tier_climbs_with_paid_history_and_age(handlers: dict[str, Any], fixed_services: Services, clock: FixedClock) -> None:
    keys = Keys.generate()
    token = token_for(handlers, keys, clock)["token"]
    settings = fixed_services.settings
    pay(fixed_services, keys.pubkey, 400, times=settings.tier_established_paid_requests)
    assert me(handlers, f"Bearer {token}")[1]["tier"] == "new"  # enough sats and requests, too young
    clock.advance(settings.tier_established_age_days * DAY)
    token = token_for(handlers, keys, clock)["token"]  # a day passed: the first token expired
    status, body = me(handlers, f"Bearer {token}")
    assert (status, body["tier"], body["budget_sats"]) == (200, "established", settings.free_tier_budget_established)
    assert (body["paid_sats"], body["paid_requests"]) == (
        400 * settings.tier_established_paid_requests,
        settings.tier_established_paid_requests,
    )
    pay(fixed_services, keys.pubkey, settings.tier_trusted_paid_sats, times=settings.tier_trusted_paid_requests)
    clock.advance(settings.tier_trusted_age_days * DAY)
    token = token_for(handlers, keys, clock)["token"]
    assert me(handlers, f"Bearer {token}")[1]["tier"] == "trusted"
    pay(fixed_services, keys.pubkey, settings.tier_elite_paid_sats, times=settings.tier_elite_paid_requests)
    clock.advance(settings.tier_elite_age_days * DAY)
    issued = token_for(handlers, keys, clock)
    assert issued["tier"] == "elite"
    assert me(handlers, f"Bearer {issued['token']}")[1]["budget_sats"] == settings.free_tier_budget_elite


def test_pins_and_blocks_override_history_and_drive_the_estimate(
    handlers: dict[str, Any], fixed_services: Services, clock: FixedClock
) -> None:
    keys = Keys.generate()
    token = token_for(handlers, keys, clock)["token"]
    fixed_services.free_tier.ensure_seeded()

    anonymous_or_new = estimate_identity(handlers, token)
    assert anonymous_or_new["identity"]["tier"] == "new"
    assert anonymous_or_new["identity"]["free_tier"]["serve"] == "gate"
    estimated = anonymous_or_new["estimated_sats"]
    assert 0 < estimated <= fixed_services.settings.free_tier_budget_established

    settings = fixed_services.settings
    pay(fixed_services, keys.pubkey, settings.tier_established_paid_sats, times=settings.tier_established_paid_requests)
    clock.advance(settings.tier_established_age_days * DAY)
    token = token_for(handlers, keys, clock)["token"]
    shown = estimate_identity(handlers, token)["identity"]
    assert shown["tier"] == "established"
    assert shown["free_tier"] == {"serve": "free", "absorb_sats": estimated, "charge_sats": 0}

    status, body = admin_put(handlers, keys.npub, '{"tier": "new"}')  # npub accepted, hex answered
    assert (status, body["pubkey"], body["tier"], body["history_tier"], body["pinned_tier"]) == (
        200,
        keys.pubkey,
        "new",
        "established",
        "new",
    )
    shown = estimate_identity(handlers, token)["identity"]
    assert (shown["tier"], shown["free_tier"]["serve"]) == ("new", "gate")

    status, body = admin_put(handlers, keys.pubkey, '{"tier": "elite"}')
    assert (status, body["tier"]) == (200, "elite")
    assert me(handlers, f"Bearer {token}")[1]["budget_sats"] == settings.free_tier_budget_elite

    status, body = admin_put(handlers, keys.pubkey, '{"blocked": true}')
    assert (status, body["blocked"], body["tier"]) == (200, True, "elite")
    shown = estimate_identity(handlers, token)["identity"]
    assert shown["free_tier"] == {"serve": "gate", "absorb_sats": 0, "charge_sats": estimated}
    status, body = me(handlers, f"Bearer {token}")
    assert (body["blocked"], body["remaining_sats"]) == (True, 0)

    status, body = admin_put(handlers, keys.pubkey, '{"blocked": false, "tier": null}')
    assert (status, body["blocked"], body["pinned_tier"], body["tier"]) == (200, False, None, "established")
    assert estimate_identity(handlers, token)["identity"]["free_tier"]["serve"] == "free"


@pytest.mark.parametrize(
    ("pubkey", "body", "status", "code"),
    [
        ("not-a-key", '{"tier": "elite"}', 400, "invalid_pubkey"),
        (Keys.generate().pubkey, '{"tier": "emperor"}', 400, "invalid_input"),
        (Keys.generate().pubkey, "{}", 400, "nothing_to_change"),
        (Keys.generate().pubkey, '{"blocked": "yes"}', 400, "invalid_input"),
        (Keys.generate().pubkey, '{"blocked": null}', 400, "invalid_blocked"),
        (Keys.generate().pubkey, '{"tier": "elite", "extra": 1}', 400, "invalid_input"),
    ],
)
def test_admin_identity_route_validates(
    handlers: dict[str, Any], fixed_services: Services, pubkey: str, body: str, status: int, code: str
) -> None:
    answer = admin_put(handlers, pubkey, body)
    assert (answer[0], answer[1]["error"]["code"]) == (status, code)


def test_admin_identity_route_needs_the_admin_key(handlers: dict[str, Any], fixed_services: Services) -> None:
    keys = Keys.generate()
    status, body = invoke(handlers["admin"], http_event("PUT", f"/api/admin/identities/{keys.pubkey}", body='{"tier": "elite"}'))
    assert status == 401
    # A Nostr identity is not an operator.
    header = keys.nip98_header("http://localhost/api/admin/identities/" + keys.pubkey, "PUT", b'{"tier": "elite"}')
    status, body = invoke(
        handlers["admin"],
        http_event("PUT", f"/api/admin/identities/{keys.pubkey}", body='{"tier": "elite"}', headers={"authorization": header}),
    )
    assert (status, body["error"]["code"]) == (401, "missing_admin_key")


def test_paid_history_is_booked_in_the_same_transaction_as_the_charge(fixed_services: Services) -> None:
    """A cancelled transaction books neither the charge nor the history."""
    from timmy.errors import TransactionCancelled

    keys = Keys.generate()
    store = fixed_services.store
    charge = {"Put": {"Item": {"pk": "TEST#charge", "sk": "1", "amount_sats": 10}, "ConditionExpression": "attribute_not_exists(pk)"}}
    store.transact([charge, tiers.record_paid_action(keys.pubkey, 10, fixed_services.clock.now())])
    with pytest.raises(TransactionCancelled):
        store.transact([charge, tiers.record_paid_action(keys.pubkey, 10, fixed_services.clock.now())])
    profile = fixed_services.identity.profile(keys.pubkey)
    assert (profile.paid_sats, profile.paid_requests) == (10, 1)
