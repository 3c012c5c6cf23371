"""Queue messages: a registry of domain handlers by queue and message type.

Every message body is JSON `{"type": "...", ...}`. A use case registers the types it handles with
`@register("settlement", "invoice.notified")`; the queue's function calls `dispatch(queue, message)`.
A message of a type nobody registered raises `UnknownMessageType`: SQS redelivers it and, after
the queue's `maxReceiveCount`, it lands in the DLQ where an operator can see it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

QUEUES = ("settlement", "work")
PING = "ping"  # a message every queue accepts and ignores: smoke tests and sample events
JOB_EXECUTE = "job.execute"  # work: {job_id}, a job whose work may start (free, or paid)
INVOICE_NOTIFIED = "invoice.notified"  # settlement: {payment_hash, owner}, from the Lightning webhook

MessageHandler = Callable[[dict[str, Any]], None]

_registry: dict[tuple[str, str], MessageHandler] = {}


class UnknownMessageType(Exception):
    """A message whose queue has no handler for its type (retried, then dead-lettered)."""


class MalformedMessage(Exception):
    """A message body that is not a JSON object with a string `type` (retried, then dead-lettered)."""


def register(queue: str, message_type: str) -> Callable[[MessageHandler], MessageHandler]:
    """Decorator: `handler(message)` handles messages of `message_type` on `queue`."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; the queues are {', '.join(QUEUES)}")

    def decorate(handler: MessageHandler) -> MessageHandler:
        existing = _registry.get((queue, message_type))
        # The same function loaded again (a new cold start in this process) replaces itself.
        if existing is not None and _origin(existing) != _origin(handler):
            raise ValueError(f"{queue}/{message_type} is already handled by {existing.__qualname__}")
        _registry[(queue, message_type)] = handler
        return handler

    return decorate


def _origin(handler: MessageHandler) -> tuple[str, str]:
    """Where a handler is defined: its file and name, whatever module name it was loaded under."""
    code = getattr(handler, "__code__", None)
    return (code.co_filename if code else handler.__module__), handler.__qualname__


def parse(body: str) -> dict[str, Any]:
    """A message body as a dict with a string `type`, or MalformedMessage."""
    try:
        message = json.loads(body)
    except ValueError as error:
        raise MalformedMessage(f"the body is not JSON: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise MalformedMessage('the body must be a JSON object with a string "type"')
    return message


def dispatch(queue: str, message: Mapping[str, Any]) -> None:
    """Hand `message` to the handler registered for its type on `queue`."""
    message_type = message.get("type")
    if message_type == PING:
        return
    handler = _registry.get((queue, str(message_type)))
    if handler is None:
        raise UnknownMessageType(f"no handler for message type {message_type!r} on the {queue} queue")
    handler(dict(message))


def encode(message_type: str, **fields: Any) -> str:
    """The JSON body of a message of `message_type` (what producers send)."""
    return json.dumps({"type": message_type, **fields}, sort_keys=True, default=str)
