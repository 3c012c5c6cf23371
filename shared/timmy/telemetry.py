"""The telemetry port: how the domain logs a warning and counts an event without knowing Powertools.

`timmy_http` plugs in an adapter that writes Powertools logs and CloudWatch metrics; the default
writes to the standard library's logging, which is what unit tests and scripts see.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

_log = logging.getLogger("timmy")


class Telemetry(Protocol):
    def count(self, name: str, value: int = 1) -> None:
        """Add `value` to the metric `name` (a CloudWatch count in AWS)."""
        ...

    def warning(self, message: str, **fields: Any) -> None:
        """Log something an operator should look at, with structured fields."""
        ...


class LoggingTelemetry:
    """Telemetry to the standard library's logging; keeps the counts for tests to read."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def count(self, name: str, value: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value

    def warning(self, message: str, **fields: Any) -> None:
        self.warnings.append((message, fields))
        _log.warning("%s %s", message, fields)
