"""One Logger, Metrics and Tracer per process, shared by every handler (Powertools).

A request that adds no metric publishes none, silently (Powertools would warn on every such
invocation). The Tracer is Powertools' own whenever X-Ray SDK tracing is on. Building it imports the X-Ray SDK,
which costs about 200 ms of every cold start (measured in bench/estimate.py), even with tracing
disabled; so where POWERTOOLS_TRACE_DISABLED is true (the template's default, flipped by its
`XRaySdkTracing` parameter, and the local stack) the handlers get a pass-through with the same
decorators instead. Lambda's own active tracing still records every invocation.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="timmy")
metrics = Metrics(namespace="Timmy", service="timmy")
# Most requests publish no metric of their own (a read, a refusal): Powertools then warns on every
# invocation, a line in each log stream that says nothing. Silenced as its docs show.
warnings.filterwarnings("ignore", "No application metrics to publish*")


class TracingOff:
    """Tracer's decorators and annotations, doing nothing (X-Ray SDK tracing is off)."""

    def capture_lambda_handler(self, function: Callable[..., Any] | None = None, **_options: Any) -> Any:
        return function if function is not None else (lambda decorated: decorated)

    capture_method = capture_lambda_handler

    def put_annotation(self, key: str, value: Any) -> None:
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        return None


def _tracer() -> Any:
    if os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true"):
        return TracingOff()
    from aws_lambda_powertools import Tracer

    return Tracer(service="timmy")


tracer = _tracer()
