"""The local poller plays Lambda's SQS event source mapping over moto's SQS (queues from template.yaml):
a message whose handler fails is redelivered and lands in the DLQ after maxReceiveCount, while the
other messages of its batch are processed exactly once."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from local.handlers import HandlerLoader
from local.poller import Poller, failed_ids, mappings_from
from local.sqs import LocalSQS
from local.template import resources
from timmy import messages

seen: Counter[str] = Counter()
seen_lock = threading.Lock()


@messages.register("settlement", "test.record")
def _record(message: dict[str, Any]) -> None:
    with seen_lock:
        seen[message["name"]] += 1


@messages.register("settlement", "test.explode")
def _explode(message: dict[str, Any]) -> None:
    with seen_lock:
        seen[message["name"]] += 1
    raise RuntimeError("this message always fails")


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalSQS]:
    server = LocalSQS(visibility_timeout_seconds=1, name_prefix=f"p{uuid.uuid4().hex[:8]}-").start()
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    try:
        yield server
    finally:
        server.stop()


def test_queues_follow_the_template(sqs: LocalSQS) -> None:
    client = sqs.client()
    for logical_id, queue in resources("AWS::SQS::Queue").items():
        attributes = client.get_queue_attributes(QueueUrl=sqs.queue_urls[logical_id], AttributeNames=["All"])["Attributes"]
        assert attributes["VisibilityTimeout"] == "1"  # the test override
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            policy = json.loads(attributes["RedrivePolicy"])
            assert policy["deadLetterTargetArn"] == sqs.queue_arns[redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]]
            assert int(policy["maxReceiveCount"]) == redrive["maxReceiveCount"]
    env = sqs.environment()
    assert env["SETTLEMENT_QUEUE_URL"] == sqs.queue_urls["SettlementQueue"] and env["WORK_QUEUE_URL"] == sqs.queue_urls["WorkQueue"]


def test_failing_message_goes_to_the_dlq_and_the_rest_of_its_batch_is_processed_once(sqs: LocalSQS) -> None:
    seen.clear()
    client = sqs.client()
    run = uuid.uuid4().hex[:6]
    bodies = [
        messages.encode("test.record", name=f"{run}-a"),
        messages.encode("test.explode", name=f"{run}-poison"),
        messages.encode("test.record", name=f"{run}-b"),
    ]
    client.send_message_batch(
        QueueUrl=sqs.queue_urls["SettlementQueue"],
        Entries=[
            {"Id": str(i), "MessageBody": body, "MessageAttributes": {"origin": {"DataType": "String", "StringValue": "test"}}}
            for i, body in enumerate(bodies)
        ],
    )
    events: list[dict[str, Any]] = []
    loader = HandlerLoader(watch=False)

    def invoke(function: str, event: dict[str, Any]) -> Any:
        events.append(event)
        return loader.invoke(function, event)

    mapping = next(m for m in mappings_from(loader) if m.queue == "SettlementQueue")
    poller = Poller(sqs, loader, invoke=invoke, mappings=[mapping]).start()
    dlq = sqs.queue_urls["SettlementDeadLetterQueue"]
    try:
        deadline = time.monotonic() + 60
        dead: list[dict[str, Any]] = []
        while not dead and time.monotonic() < deadline:
            dead = client.receive_message(QueueUrl=dlq, WaitTimeSeconds=1, MessageSystemAttributeNames=["All"]).get("Messages", [])
    finally:
        poller.stop()

    max_receive_count = resources("AWS::SQS::Queue")["SettlementQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    assert [m["Body"] for m in dead] == [bodies[1]]
    assert seen[f"{run}-a"] == 1 and seen[f"{run}-b"] == 1
    assert seen[f"{run}-poison"] == max_receive_count
    assert sqs.approximate_counts("SettlementQueue") == (0, 0)
    first = SqsModel.model_validate(events[0])  # real SQS event records
    record = first.Records[0]
    assert record.eventSource == "aws:sqs" and record.eventSourceARN == sqs.queue_arns["SettlementQueue"]
    assert record.attributes.ApproximateReceiveCount == "1" and record.messageAttributes["origin"].stringValue == "test"
    receive_counts = [int(r["attributes"]["ApproximateReceiveCount"]) for e in events for r in e["Records"] if r["body"] == bodies[1]]
    assert receive_counts == list(range(1, max_receive_count + 1))


def test_batch_item_failures_semantics() -> None:
    records = [{"messageId": "1"}, {"messageId": "2"}]
    assert failed_ids({"batchItemFailures": []}, records, True) == set()
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "2"}]}, records, True) == {"2"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, records, True) == {"1", "2"}  # unknown id: whole batch
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "2"}]}, records, False) == set()  # not reported: success


def test_unknown_and_malformed_messages_fail() -> None:
    with pytest.raises(messages.UnknownMessageType):
        messages.dispatch("work", {"type": "no.such.type"})
    with pytest.raises(messages.MalformedMessage):
        messages.parse("[1]")
    messages.dispatch("work", messages.parse('{"type": "ping"}'))


def test_the_batching_window_gathers_a_batch_as_lambda_does(sqs: LocalSQS) -> None:
    """The window opens with the first message: later ones join the same invocation; the batch goes
    when the window has passed, or at once when it is full; a window of 0 delivers at once."""
    client = sqs.client()
    url = sqs.queue_urls["SettlementQueue"]
    loader = HandlerLoader(watch=False)
    mapping = next(m for m in mappings_from(loader) if m.queue == "SettlementQueue")
    assert mapping.batching_window_seconds == 0 and mapping.batch_size == 10  # template.yaml: settlement books at once
    mapping = replace(mapping, batching_window_seconds=1)  # the poller's window semantics, with a window
    batches: list[list[str]] = []

    def invoke(function: str, event: dict[str, Any]) -> Any:
        batches.append([r["body"] for r in event["Records"]])
        return {"batchItemFailures": []}

    client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "30"})  # as in AWS: far above the window
    poller = Poller(sqs, loader, invoke=invoke, mappings=[mapping])
    client.send_message(QueueUrl=url, MessageBody="first")
    later = threading.Timer(0.3, lambda: client.send_message_batch(QueueUrl=url, Entries=[{"Id": i, "MessageBody": i} for i in "ab"]))
    later.start()
    started = time.monotonic()
    assert poller.poll_once(mapping, client) == 3
    took = time.monotonic() - started
    later.join()
    assert sorted(batches[0]) == ["a", "b", "first"] and 0.9 <= took < 1.6  # one invocation, after the window

    client.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)])
    started = time.monotonic()
    delivered = 0
    while delivered < 10:
        delivered += poller.poll_once(mapping, client)
    assert time.monotonic() - started < 0.8 and sum(len(b) for b in batches[1:]) == 10  # full: no wait for the window

    client.send_message(QueueUrl=url, MessageBody="alone")
    started = time.monotonic()
    assert poller.poll_once(replace(mapping, batching_window_seconds=0), client) == 1
    assert time.monotonic() - started < 0.5 and batches[-1] == ["alone"]

    # A visibility timeout of 1 s (the tests' own): the window shrinks to half of it, so a message
    # cannot come back and count a second receive while its own batch is still gathering.
    client.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "1"})
    client.send_message(QueueUrl=url, MessageBody="short")
    started = time.monotonic()
    assert Poller(sqs, loader, invoke=invoke, mappings=[mapping]).poll_once(mapping, client) == 1
    assert 0.4 <= time.monotonic() - started < 0.9 and batches[-1] == ["short"]
