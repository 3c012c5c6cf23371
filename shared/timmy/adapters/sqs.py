"""The SQS adapter of the queue port (`timmy.ports.queue.Queue`): one queue by its URL."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config

# A queue answers in milliseconds when SQS is well; the health check must not wait longer.
CLIENT_CONFIG = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1})


def sqs_client() -> Any:
    """A low-level SQS client (endpoint from AWS_ENDPOINT_URL_SQS when set, as boto3 reads it)."""
    return boto3.client("sqs", config=CLIENT_CONFIG)


class SqsQueue:
    """One queue; `client` makes the SQS client on the first send or ping (~30 ms of a cold start's
    first request: the routes that only read, or refuse, never pay for it)."""

    def __init__(self, name: str, url: str, client: Callable[[], Any]):
        self.name = name
        self.url = url
        self._make_client = client

    @cached_property
    def client(self) -> Any:
        return self._make_client()

    @property
    def configured(self) -> bool:
        return bool(self.url)

    def send(self, message: Mapping[str, Any]) -> None:
        if not self.url:
            raise RuntimeError(f"the {self.name} queue is not configured")
        self.client.send_message(QueueUrl=self.url, MessageBody=json.dumps(message, separators=(",", ":")))

    def ping(self) -> None:
        if not self.url:
            raise RuntimeError(f"the {self.name} queue is not configured")
        self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
