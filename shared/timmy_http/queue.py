"""The Lambda glue of a queue consumer: Powertools' BatchProcessor over the message registry.

Each record's body is parsed and dispatched by type (`timmy.messages`); a record that raises is
reported in `batchItemFailures` (the event source mappings set `ReportBatchItemFailures`, tested
against template.yaml), so SQS redelivers only that one after its VisibilityTimeout and, after
`maxReceiveCount`, moves it to the queue's DLQ. The others of the batch are deleted as processed.

A batch whose every record failed is answered the same way, not raised (`raise_on_entire_batch_failure`
off): for SQS both keep every message, but a raise counts as a Lambda invocation error, and with a
batch of one (the work queue) every expected `RetryLater` (a job's work leased to a twin delivery)
would. Failures are logged and counted here instead: a `RetryLater` at info, as
`<Queue>MessageDeferred`; any other exception at error with its traceback, as `<Queue>MessageFailed`.
Lambda's own Errors metric is left to what breaks the function itself (init, Timeout, a bad event).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from timmy import messages
from timmy.errors import RetryLater
from timmy_http.observability import logger, metrics, tracer


def batch_handler_for(queue: str) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point of the consumer of `queue` (two lines in the function's app.py)."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    metric = queue.capitalize()

    @tracer.capture_method
    def record_handler(record: SQSRecord) -> None:
        receives = record.attributes.get("ApproximateReceiveCount")  # how near the DLQ it is
        logger.append_keys(message_id=record.message_id, receive_count=receives, message_type=None)
        try:
            message = messages.parse(record.body)
            logger.append_keys(message_type=message["type"])
            messages.dispatch(queue, message)
        except RetryLater as later:
            logger.info("message deferred; the queue delivers it again later", extra={"reason": str(later)})
            metrics.add_metric(name=f"{metric}MessageDeferred", unit="Count", value=1)
            raise
        except Exception:
            logger.exception("message failed; the queue delivers it again, then dead-letters it")
            metrics.add_metric(name=f"{metric}MessageFailed", unit="Count", value=1)
            raise
        metrics.add_metric(name=f"{metric}MessageProcessed", unit="Count", value=1)

    @logger.inject_lambda_context
    @tracer.capture_lambda_handler
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context))

    return handler
