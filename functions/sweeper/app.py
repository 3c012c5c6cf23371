"""The sweeper, on an EventBridge schedule: voids reservations past their expiry, so a crashed
worker cannot strand pool sats (contract section 3). Later issues add invoices and payouts."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from timmy_http.observability import logger, metrics, tracer
from timmy_http.services import services


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    report = services().free_tier.sweep()
    metrics.add_metric(name="ReservationsVoided", unit="Count", value=report.voided)
    metrics.add_metric(name="ReservationVoidsFailed", unit="Count", value=len(report.failed))
    extra = {"reservations_voided": report.voided, "already_resolved": report.skipped, "failed": report.failed}
    if report.failed:
        logger.warning("sweep done; some holds are left for the next run", extra=extra)
    else:
        logger.info("sweep done", extra=extra)
    return {"reservations_voided": report.voided}
