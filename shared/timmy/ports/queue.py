"""A message queue (SQS in AWS and locally through ElasticMQ): send, and whether it answers.

The SQS adapter is `timmy.adapters.sqs.SqsQueue`; message bodies are the typed messages of
`timmy.messages`, consumed by `timmy_http.queue.batch_handler_for`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Queue(Protocol):
    name: str

    @property
    def configured(self) -> bool:
        """False when this deployment has no such queue (no URL)."""
        ...

    def send(self, message: Mapping[str, Any]) -> None:
        """Enqueue one message (serialised as JSON)."""
        ...

    def ping(self) -> None:
        """Return when the queue answers; raise when it does not (the health check)."""
        ...
