"""Ledger fixtures on DynamoDB Local: a clock the tests move, the ledger and the free tier."""

from __future__ import annotations

import pytest

from timmy.adapters.dynamodb import DynamoStore
from timmy.clock import FixedClock
from timmy.config import Settings
from timmy.free_tier.service import FreeTierService
from timmy.ledger.ledger import Ledger


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def settings() -> Settings:
    return Settings(pool_seed_sats=2_000, reservation_ttl_seconds=600)


@pytest.fixture
def ledger(store: DynamoStore, clock: FixedClock) -> Ledger:
    return Ledger(store, clock)


@pytest.fixture
def free_tier(ledger: Ledger, settings: Settings, clock: FixedClock) -> FreeTierService:
    return FreeTierService(ledger, settings, clock)
