"""The sweeper, on an EventBridge schedule (contract section 6): voids reservations past their
expiry (a crashed worker cannot strand pool sats), books paid invoices whose notification never
came and expires unpaid ones, resolves payouts whose outcome was unknown, and fails jobs whose work
never finished (but not one whose work lease a worker holds). Each part carries on past what it cannot
finish now; the next run picks it up."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from timmy_http.observability import logger, metrics, tracer
from timmy_http.services import services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    svc = services()
    holds = svc.free_tier.sweep()
    invoices = svc.invoices.sweep()
    payouts = svc.payouts.sweep()
    jobs = svc.jobs.sweep()
    sessions_closed = svc.sessions.sweep_idle()
    counts = {
        "reservations_voided": holds.voided,
        "invoices_booked": invoices.booked,
        "invoices_expired": invoices.expired,
        "payouts_succeeded": payouts.succeeded,
        "payouts_failed": payouts.failed,
        "jobs_failed": jobs.failed,
        "idle_sessions_closed": sessions_closed,
    }
    for name, value in counts.items():
        metrics.add_metric(name="".join(part.capitalize() for part in name.split("_")), unit="Count", value=value)
    left = {"reservations": holds.failed, "invoices": invoices.failed, "payouts": payouts.errors}
    extra = {
        **counts,
        "already_resolved": holds.skipped,
        "payouts_still_unknown": payouts.still_unknown,
        "jobs_leased": jobs.leased,  # stuck, but a worker holds the work: a later run, once the lease lapsed
        "left_for_next_run": left,
    }
    if any(left.values()):
        logger.warning("sweep done; some items are left for the next run", extra=extra)
    else:
        logger.info("sweep done", extra=extra)
    return counts
