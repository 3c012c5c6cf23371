"""The sweeper Lambda, as EventBridge would invoke it, returns expired holds to pool and budget."""

from __future__ import annotations

import time

import pytest

from local.handlers import HandlerLoader
from timmy.identity.caller import Caller
from timmy_http.services import reset_services


def test_the_scheduled_sweeper_voids_expired_reservations(table_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESERVATION_TTL_SECONDS", "1")
    services = reset_services()
    caller = Caller("a" * 64, "trusted")
    _, reservation = services.free_tier.decide_and_reserve(caller, 60, "crashed")
    assert reservation is not None
    event = {
        "version": "0",
        "id": "1",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "time": "2026-11-25T00:00:00Z",
        "detail": {},
    }
    loader = HandlerLoader(watch=False)
    assert loader.invoke("SweeperFunction", event)["reservations_voided"] == 0
    time.sleep(1.1)
    assert loader.invoke("SweeperFunction", event)["reservations_voided"] == 1
    assert services.free_tier.pool_status().reserved_sats == 0
    assert services.free_tier.usage_today(caller.pubkey, "trusted").remaining_sats == 200
    reset_services()
