"""SQS for the local stack: moto's server on a loopback port, with the queues of template.yaml.

The handlers reach it through the same boto3 code as in AWS: only `AWS_ENDPOINT_URL_SQS` and the
queue URL variables differ. Queues get the template's visibility timeouts and redrive policies
(`!GetAtt SomeDLQ.Arn` resolves to the local DLQ), so poison messages land in the DLQ as they would.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local.dynamodb import free_port
from local.template import TEMPLATE_PATH, load_template, resources

REGION = "us-east-1"
# CloudFormation properties of AWS::SQS::Queue that are also CreateQueue attributes (as strings).
_PASSED_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
)


class LocalSQS:
    """moto's ThreadedMotoServer plus the template's queues, by logical id.

    With `own_server=False` it only creates queues on the server already listening on `port`.
    `visibility_timeout_seconds` overrides every queue's VisibilityTimeout (tests use 1 s so a
    redelivery takes a second, not a minute). `name_prefix` keeps queues of several tests apart
    on one server (moto keeps its state per process).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        visibility_timeout_seconds: int | None = None,
        name_prefix: str = "",
        template_path: Path = TEMPLATE_PATH,
        own_server: bool = True,
    ):
        self.port = port or free_port()
        self.visibility_timeout_seconds = visibility_timeout_seconds
        self.name_prefix = name_prefix
        self.template_path = template_path
        self.queue_urls: dict[str, str] = {}  # logical id -> URL
        self.queue_arns: dict[str, str] = {}  # logical id -> ARN
        self.own_server = own_server  # False: the queues live on a server someone else started
        self._server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LocalSQS:
        """Start the server (if not started) and create the template's queues."""
        if self._server is None and self.own_server:
            from moto.server import ThreadedMotoServer

            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
            self._server.start()
        self.create_queues()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def client(self) -> Any:
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32),
        )

    def create_queues(self) -> dict[str, str]:
        """Create every AWS::SQS::Queue of the template; queues a redrive policy names come first."""
        queues = resources("AWS::SQS::Queue", self.template_path)
        pending = dict(queues)
        client = self.client()
        while pending:
            ready = [name for name, queue in pending.items() if _dead_letter_target(queue) in (None, *self.queue_arns)]
            if not ready:
                raise ValueError(f"redrive policies of {sorted(pending)} name queues the template does not define")
            for name in ready:
                self._create_queue(client, name, pending.pop(name))
        return dict(self.queue_urls)

    def _create_queue(self, client: Any, logical_id: str, queue: Mapping[str, Any]) -> None:
        props = queue.get("Properties") or {}
        attributes = {key: _attribute_value(props[key]) for key in _PASSED_ATTRIBUTES if key in props}
        visibility = self.visibility_timeout_seconds if self.visibility_timeout_seconds is not None else props.get("VisibilityTimeout")
        if visibility is not None:
            attributes["VisibilityTimeout"] = str(visibility)
        redrive = props.get("RedrivePolicy")
        if redrive:
            target = _dead_letter_target(queue)
            assert target is not None
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": self.queue_arns[target], "maxReceiveCount": int(redrive["maxReceiveCount"])}
            )
        name = props.get("QueueName") or f"{self.name_prefix}{logical_id}"
        if props.get("FifoQueue") and not str(name).endswith(".fifo"):
            name = f"{name}.fifo"
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.queue_urls[logical_id], self.queue_arns[logical_id] = url, arn

    def environment(self) -> dict[str, str]:
        """The variables the template gives the functions for these queues, plus the SQS endpoint."""
        env = {"AWS_ENDPOINT_URL_SQS": self.endpoint_url}
        for variables in _environment_blocks(self.template_path):
            for variable, value in variables.items():
                if isinstance(value, Mapping) and value.get("Ref") in self.queue_urls:
                    env[variable] = self.queue_urls[value["Ref"]]
        return env

    def export(self, environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
        """Put `environment()` into `environ` (the process environment by default)."""
        env = self.environment()
        environ.update(env)
        return env

    def approximate_counts(self, logical_id: str) -> tuple[int, int]:
        """(visible, in flight) messages of one queue: for tests and the banner."""
        attributes = self.client().get_queue_attributes(
            QueueUrl=self.queue_urls[logical_id],
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _dead_letter_target(queue: Mapping[str, Any]) -> str | None:
    """The logical id of the DLQ a queue's RedrivePolicy names (`!GetAtt X.Arn`), if any."""
    redrive = (queue.get("Properties") or {}).get("RedrivePolicy")
    if not redrive:
        return None
    target = redrive.get("deadLetterTargetArn")
    if isinstance(target, Mapping) and "Fn::GetAtt" in target:
        return str(target["Fn::GetAtt"][0])
    raise ValueError(f"a local RedrivePolicy needs deadLetterTargetArn: !GetAtt <Queue>.Arn, not {target!r}")


def _attribute_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _environment_blocks(template_path: Path) -> list[Mapping[str, Any]]:
    """Environment variable maps of Globals and of every function."""
    template = load_template(template_path)
    blocks = [(((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}).get("Variables") or {}]
    for function in resources("AWS::Serverless::Function", template_path).values():
        blocks.append(((function.get("Properties") or {}).get("Environment") or {}).get("Variables") or {})
    return blocks
