"""Shared fixtures: one DynamoDB Local for the session, a fresh table per test, fresh services."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator

import pytest

# Nothing in the tests may reach AWS: fake credentials and a region before boto3 is imported.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "Timmy")
os.environ.setdefault("POWERTOOLS_DEV", "false")
os.environ.setdefault("ADMIN_API_KEY", "test-admin-key")
os.environ.setdefault("TOKEN_SECRET", "test-token-secret")
# The simulated Lightning node keeps its key and state in a folder of the test session, never in .local.
os.environ.setdefault("TIMMY_DATA_DIR", tempfile.mkdtemp(prefix="timmy-tests-"))

from local.dynamodb import DynamoDBLocal
from local.sqs import LocalSQS
from tests.api_client import ApiClient
from tests.lnbits_server import lnbits  # a real LNbits for the session, shared by every folder
from timmy.adapters.dynamodb import DynamoStore
from timmy.ledger.invariants import audit_store
from timmy_http.services import Services, reset_services

__all__ = ["lnbits"]


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[DynamoDBLocal]:
    """DynamoDB Local, in memory, on a free port; stopped by its process id at the end."""
    server = DynamoDBLocal().start()
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = server.endpoint_url
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqs_server() -> Iterator[LocalSQS]:
    """moto's SQS server for the session; stopped by its process id at the end."""
    server = LocalSQS(name_prefix="session-").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def local_sqs(sqs_server: LocalSQS) -> LocalSQS:
    """The template's queues, fresh for one test (visibility timeout 1 s), on the session's server."""
    return LocalSQS(sqs_server.port, name_prefix=f"t{uuid.uuid4().hex[:10]}-", visibility_timeout_seconds=1, own_server=False).start()


@pytest.fixture
def table_name(dynamodb_local: DynamoDBLocal, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh table (from template.yaml) for one test; TABLE_NAME points at it.

    After the test the ledger's invariant checker (contract section 4) runs over the table: every
    test that touches the ledger leaves it whole, or fails. A test that corrupts the table on
    purpose says so with `@pytest.mark.corrupts_ledger`.
    """
    name = f"timmy-{uuid.uuid4().hex[:12]}"
    dynamodb_local.create_table(name)
    monkeypatch.setenv("TABLE_NAME", name)
    yield name
    if request.node.get_closest_marker("corrupts_ledger") is None:
        report = audit_store(DynamoStore(name, client=dynamodb_local.client()))
        assert report.ok, f"ledger invariants broken after the test: {report.as_dict()}"


@pytest.fixture
def store(dynamodb_local: DynamoDBLocal, table_name: str) -> DynamoStore:
    return DynamoStore(table_name, client=dynamodb_local.client())


@pytest.fixture
def services(table_name: str) -> Iterator[Services]:
    """The handlers' service container, rebuilt from the environment (a fresh cold start)."""
    yield reset_services()
    reset_services()


@pytest.fixture
def api(services: Services) -> ApiClient:
    """The HTTP API in process, routed by template.yaml, on this test's fresh table."""
    return ApiClient()
