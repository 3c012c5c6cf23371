"""Settings come from the environment once: names upper-cased, values validated, the rest ignored."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from timmy.config import Settings


def test_environment_variables_set_the_fields_they_name() -> None:
    settings = Settings.from_environment({"POOL_SEED_SATS": "500", "FIXED_BTC_PRICE_USD": "65000.5", "TABLE_NAME": "t", "PATH": "/bin"})
    assert (settings.pool_seed_sats, settings.fixed_btc_price_usd, settings.table_name) == (500, Decimal("65000.5"), "t")
    assert settings.free_tier_budget_trusted == 200  # the contract's default


@pytest.mark.parametrize(
    "environ", [{"POOL_SEED_SATS": "-1"}, {"POOL_CREDIT_PCT": "101"}, {"PRICE_SOURCE": "guess"}, {"POOL_SEED_SATS": "ten"}]
)
def test_a_bad_value_stops_the_cold_start_with_its_name(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.from_environment(environ)
    assert next(iter(environ)).lower() in str(refused.value)


def test_a_reservation_outlives_every_delivery_of_its_work() -> None:
    """The sweeper must not void a hold while the work queue may still (re)deliver its work: the
    last delivery starts after (receives - 1) visibility timeouts and runs for the worker's timeout."""
    from local.template import load_template

    resources = load_template()["Resources"]
    queue = resources["WorkQueue"]["Properties"]
    worker_timeout_seconds = resources["WorkerFunction"]["Properties"]["Timeout"]
    last_delivery_ends = (queue["RedrivePolicy"]["maxReceiveCount"] - 1) * queue["VisibilityTimeout"] + worker_timeout_seconds
    assert Settings().reservation_ttl_seconds > last_delivery_ends


@pytest.mark.parametrize("environ", [{"MARGIN_PCT": "-100"}, {"INFRA_OVERHEAD_PCT": "-150"}, {"FIXED_BTC_PRICE_USD": "0"}])
def test_pricing_settings_that_would_price_at_zero_or_crash_are_refused(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings.from_environment(environ)


def test_a_provider_call_ends_before_the_worker_is_killed() -> None:
    """The executor's deadline must leave the worker time to settle (release holds, make the paid
    sats refundable) before Lambda's Timeout kills it."""
    from local.template import load_template

    worker_timeout_seconds = load_template()["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
    assert Settings().executor_timeout_seconds <= worker_timeout_seconds - 10


def test_a_work_lease_outlives_its_worker_and_lapses_before_the_redelivery() -> None:
    """A live worker's lease never lapses (Lambda kills it at its Timeout first), so a twin delivery
    never runs the work beside it; the redelivery after a killed worker (one VisibilityTimeout after
    the receive) finds the lease lapsed and runs it."""
    from local.template import load_template

    resources = load_template()["Resources"]
    worker_timeout_seconds = resources["WorkerFunction"]["Properties"]["Timeout"]
    visibility_timeout_seconds = resources["WorkQueue"]["Properties"]["VisibilityTimeout"]
    assert worker_timeout_seconds < Settings().work_lease_seconds < visibility_timeout_seconds
