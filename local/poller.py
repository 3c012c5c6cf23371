"""Lambda's SQS event source mapping, played locally: pollers for each `SQS` event of template.yaml.

It receives batches of the configured size, hands the function real SQS event records, deletes the
messages that succeeded and leaves those named in `batchItemFailures` (or all of them, when the
handler raised) to come back after the visibility timeout, and to the DLQ after `maxReceiveCount`.

As in Lambda, several batches of one queue run at once (Lambda starts five pollers and scales up to
the function's concurrency): here one poller per environment the function may have (its pool's
cap), so a slow invocation — a worker held by its provider, or killed at its Timeout — holds up
its own batch only, not the whole queue. An in-process loader (no pools) gets one poller.
"""

from __future__ import annotations

import base64
import math
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local.environments import InvocationTimeout
from local.handlers import REGION
from local.sqs import LocalSQS

if TYPE_CHECKING:
    from local.gateway import Invoker

RECEIVE_MAX = 10  # SQS's own limit per ReceiveMessage
WAIT_SECONDS = 1  # long-poll length: also how long stop() may wait for a thread
GATHER_POLL_SECONDS = 0.05  # within a batching window, how often the queue is asked again

Invoke = Callable[[str, dict[str, Any]], Any]


@dataclass(frozen=True)
class EventSourceMapping:
    """One event source mapping: a queue, the function it feeds, and the batching."""

    function: str
    queue: str  # logical id
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool


def mappings_from(loader: Invoker) -> list[EventSourceMapping]:
    found = []
    for spec in loader.specs.values():
        for props in spec.events_of_type("SQS").values():
            queue = props["Queue"]
            logical_id = queue["Fn::GetAtt"][0] if isinstance(queue, Mapping) else str(queue)
            found.append(
                EventSourceMapping(
                    function=spec.logical_id,
                    queue=logical_id,
                    batch_size=int(props.get("BatchSize", 10)),
                    batching_window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                    report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                )
            )
    return found


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """One record of a Lambda SQS event, from one message of ReceiveMessage."""
    attributes = {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": {name: _message_attribute(value) for name, value in (message.get("MessageAttributes") or {}).items()},
        "md5OfBody": message.get("MD5OfBody", ""),
        **({"md5OfMessageAttributes": message["MD5OfMessageAttributes"]} if message.get("MD5OfMessageAttributes") else {}),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {"dataType": value.get("DataType", "String"), "stringListValues": [], "binaryListValues": []}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        binary = value["BinaryValue"]
        attribute["binaryValue"] = base64.b64encode(binary).decode() if isinstance(binary, bytes | bytearray) else str(binary)
    return attribute


def failed_ids(result: Any, records: list[dict[str, Any]], report_failures: bool) -> set[str]:
    """The message ids to keep, from the handler's answer (ReportBatchItemFailures semantics)."""
    if not report_failures or not isinstance(result, Mapping):
        return set()
    failures = result.get("batchItemFailures") or []
    known = {r["messageId"] for r in records}
    ids = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, Mapping)}
    # Lambda treats an answer naming an unknown or empty id as a failure of the whole batch.
    return known if ids - known else ids


class Poller:
    """Threads that feed each queue's messages to its function, until `stop()`."""

    def __init__(self, sqs: LocalSQS, loader: Invoker, *, invoke: Invoke | None = None, mappings: list[EventSourceMapping] | None = None):
        self.sqs = sqs
        self.loader = loader
        self.invoke = invoke or loader.invoke
        self.mappings = mappings if mappings is not None else mappings_from(loader)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # One ReceiveMessage at a time per queue: moto's receive_message takes no lock between finding
        # a visible message and marking it received (moto/sqs/models.py), so two receivers woken by one
        # new message could both take it; SQS hands it to one. Invocations still run side by side.
        self._receiving = {mapping.queue: threading.Lock() for mapping in self.mappings}
        self.batches = 0
        self._visibility: dict[str, float] = {}  # queue logical id -> VisibilityTimeout seconds

    def start(self) -> Poller:
        for mapping in self.mappings:
            if mapping.queue not in self.sqs.queue_urls:
                raise ValueError(f"{mapping.function} reads {mapping.queue}, which the local SQS did not create")
            for index in range(self.pollers(mapping)):
                thread = threading.Thread(target=self._run, args=(mapping,), name=f"poller-{mapping.function}-{index}", daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def pollers(self, mapping: EventSourceMapping) -> int:
        """Batches of this mapping that may run at once: the function's environments (1 in process)."""
        pool = (getattr(self.loader, "pools", None) or {}).get(mapping.function)
        return max(1, int(pool.cap)) if pool is not None else 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WAIT_SECONDS + 5)
        self._threads.clear()

    def _run(self, mapping: EventSourceMapping) -> None:
        client = self.sqs.client()
        while not self._stop.is_set():
            try:
                self.poll_once(mapping, client)
            except Exception:
                if self._stop.is_set():
                    return
                traceback.print_exc(file=sys.stderr)
                self._stop.wait(1)

    def poll_once(self, mapping: EventSourceMapping, client: Any = None) -> int:
        """Receive one batch and deliver it; the number of messages delivered."""
        client = client or self.sqs.client()
        messages = self._receive(mapping, client)
        if not messages:
            return 0
        arn = self.sqs.queue_arns[mapping.queue]
        records = [sqs_record(m, arn) for m in messages]
        try:
            result = self.invoke(mapping.function, {"Records": records})
        except InvocationTimeout as timeout:
            # Killed with its environment: the batch comes back after its visibility timeout.
            print(f"  {timeout}; the batch will be redelivered", file=sys.stderr, flush=True)
            return len(records)
        except Exception:
            # The whole batch failed: every message comes back after its visibility timeout.
            traceback.print_exc(file=sys.stderr)
            return len(records)
        with self._lock:
            self.batches += 1
        keep = failed_ids(result, records, mapping.report_batch_item_failures)
        done = [r for r in records if r["messageId"] not in keep]
        for start in range(0, len(done), RECEIVE_MAX):
            chunk = done[start : start + RECEIVE_MAX]
            client.delete_message_batch(
                QueueUrl=self.sqs.queue_urls[mapping.queue],
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        return len(records)

    def _window(self, mapping: EventSourceMapping, client: Any) -> float:
        """The batching window, but under half the queue's visibility timeout: else a message could
        come back (and count a receive) while its own batch is still gathering. AWS asks for a
        visibility timeout well above the window anyway; tests shorten it to 1 s."""
        if mapping.queue not in self._visibility:
            attributes = client.get_queue_attributes(QueueUrl=self.sqs.queue_urls[mapping.queue], AttributeNames=["VisibilityTimeout"])
            self._visibility[mapping.queue] = float(attributes["Attributes"]["VisibilityTimeout"])
        return min(mapping.batching_window_seconds, self._visibility[mapping.queue] / 2)

    def _receive(self, mapping: EventSourceMapping, client: Any) -> list[dict[str, Any]]:
        """Up to batch_size messages. As Lambda does, the batching window opens with the first
        message and the batch goes when it is full or the window has passed (window 0: at once)."""
        url = self.sqs.queue_urls[mapping.queue]
        messages: dict[str, dict[str, Any]] = {}  # by message id: one that came back meanwhile counts once
        deadline = math.inf
        while len(messages) < mapping.batch_size and not self._stop.is_set() and time.monotonic() < deadline:
            receiving = self._receiving.setdefault(mapping.queue, threading.Lock())
            if not receiving.acquire(timeout=GATHER_POLL_SECONDS):
                continue  # another poller of this queue is receiving: ask again (or stop)
            try:
                response = client.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=min(RECEIVE_MAX, mapping.batch_size - len(messages)),
                    WaitTimeSeconds=WAIT_SECONDS if not messages else 0,  # SQS waits whole seconds: within the window, poll
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                )
            finally:
                receiving.release()
            received = response.get("Messages") or []
            if received and not messages:
                deadline = time.monotonic() + self._window(mapping, client)
            messages.update((m["MessageId"], m) for m in received)
            if not messages:
                break  # an empty long poll: the caller asks again
            if not received:
                self._stop.wait(min(GATHER_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        return list(messages.values())
