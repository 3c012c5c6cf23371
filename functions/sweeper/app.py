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
    voided = services().free_tier.sweep()
    metrics.add_metric(name="ReservationsVoided", unit="Count", value=voided)
    logger.info("sweep done", extra={"reservations_voided": voided})
    return {"reservations_voided": voided}
