"""Consumer of the work queue: runs a job's work, prices its actual usage and settles the ledger
(`Jobs.execute`). A retryable provider error (429, 5xx, unreachable) raises, so SQS redelivers the
message; after the queue's `maxReceiveCount` it rests in the DLQ and the sweeper fails the job. A
delivery that finds the job's work leased to another delivery raises `WorkInProgress` (a
`RetryLater`): it ran nothing, and the queue glue reports it in `batchItemFailures` (an info log and
`WorkMessageDeferred`, no invocation error), so it comes back after the queue's VisibilityTimeout,
when the job is final or the lease has lapsed (its holder died)."""

from __future__ import annotations

import re
from typing import Any

from timmy import messages
from timmy_http.observability import logger
from timmy_http.queue import batch_handler_for
from timmy_http.services import services

JOB_ID = re.compile(r"^[0-9a-f]{32}$")


@messages.register("work", messages.JOB_EXECUTE)
def job_execute(message: dict[str, Any]) -> None:
    job_id = message.get("job_id")
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        raise messages.MalformedMessage("job.execute needs a job_id of 32 lowercase hex")
    job = services().jobs.execute(job_id)
    logger.info("job executed", extra={"job_id": job_id, "status": job.status.value if job else "unknown"})


lambda_handler = batch_handler_for("work")
