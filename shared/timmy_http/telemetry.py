"""The telemetry port (timmy.telemetry) on Powertools: structured warnings and CloudWatch metrics."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from timmy_http.observability import logger, metrics


class PowertoolsTelemetry:
    def count(self, name: str, value: int = 1) -> None:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)

    def warning(self, message: str, **fields: Any) -> None:
        logger.warning(message, extra=fields)
