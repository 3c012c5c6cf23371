"""One Logger, Metrics and Tracer per process, shared by every handler (Powertools)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="timmy")
metrics = Metrics(namespace="Timmy", service="timmy")
tracer = Tracer(service="timmy")
