"""The Lambda glue of a queue consumer: Powertools' BatchProcessor over the message registry.

Each record's body is parsed and dispatched by type (`timmy.messages`); a record that raises is
reported in `batchItemFailures`, so SQS redelivers only that one and, after `maxReceiveCount`,
moves it to the queue's DLQ. The others of the batch are deleted as processed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from timmy import messages
from timmy_http.observability import logger, metrics, tracer


def batch_handler_for(queue: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point of the consumer of `queue` (two lines in the function's app.py)."""
    processor = BatchProcessor(event_type=EventType.SQS)

    @tracer.capture_method
    def record_handler(record: SQSRecord) -> None:
        message = messages.parse(record.body)
        logger.append_keys(message_type=message["type"], message_id=record.message_id)
        messages.dispatch(queue, message)
        metrics.add_metric(name=f"{queue.capitalize()}MessageProcessed", unit="Count", value=1)

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context))

    return handler
