"""The DynamoDB adapter: the only module of the domain package that touches boto3.

It speaks DynamoDB's own expression language (the ledger is designed around conditional writes
and `TransactWriteItems`, so hiding them would hide the design), but it owns everything else:
the client, (de)serialisation to plain Python (ints for whole numbers), the mapping of
cancellations to `TransactionCancelled`, and counters of round trips and consumed capacity that
the benchmarks read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from timmy.errors import TransactionCancelled
from timmy.ports.store import PageQuery

BATCH_GET_MAX = 100
TRANSACT_GET_MAX = 100  # DynamoDB's limit on one TransactGetItems

# Fail fast inside a Lambda's 10 s: at most 2 attempts of (1 s connect + 3 s read), instead of
# botocore's 60 s reads; a transaction answers in milliseconds when DynamoDB is well.
CLIENT_CONFIG = Config(
    connect_timeout=1, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=64, parameter_validation=False
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    return dict(_serializer.serialize(value))


def _from_attr(attr: Mapping[str, Any]) -> Any:
    value = _deserializer.deserialize(attr)  # type: ignore[arg-type]
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _to_attr(v) for k, v in item.items() if v is not None}


def deserialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _from_attr(v) for k, v in item.items()}


@dataclass
class Usage:
    """Round trips and consumed capacity, counted per store (thread-safe)."""

    calls: int = 0
    write_capacity_units: float = 0.0
    read_capacity_units: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, response: Mapping[str, Any], *, writes: bool) -> None:
        """Count one call; its consumed capacity is read or write capacity by what the call did."""
        consumed = response.get("ConsumedCapacity") or []
        if isinstance(consumed, Mapping):
            consumed = [consumed]
        units = sum(float(entry.get("CapacityUnits", 0) or 0) for entry in consumed)
        with self._lock:
            self.calls += 1
            if writes:
                self.write_capacity_units += units
            else:
                self.read_capacity_units += units

    def snapshot(self) -> tuple[int, float, float]:
        with self._lock:
            return self.calls, self.write_capacity_units, self.read_capacity_units


class DynamoStore:
    """One table, reached through the low-level client (cheaper to import and create than a resource)."""

    def __init__(self, table_name: str, client: Any = None, endpoint_url: str | None = None):
        self.table_name = table_name
        self.client: Any = client or boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            config=CLIENT_CONFIG,
        )
        self.usage = Usage()

    # --- single items --------------------------------------------------------------------

    def get(self, pk: str, sk: str, consistent: bool = True) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=serialize_item({"pk": pk, "sk": sk}),
            ConsistentRead=consistent,
            ReturnConsumedCapacity="TOTAL",
        )
        self.usage.add(response, writes=False)
        item = response.get("Item")
        return deserialize_item(item) if item else None

    def batch_get(self, keys: Sequence[tuple[str, str]], consistent: bool = True) -> dict[tuple[str, str], dict[str, Any]]:
        """Items by (pk, sk); missing ones are absent from the answer. Retries unprocessed keys."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        pending = [serialize_item({"pk": pk, "sk": sk}) for pk, sk in dict.fromkeys(keys)]
        for _attempt in range(5):
            if not pending:
                break
            chunk, pending = pending[:BATCH_GET_MAX], pending[BATCH_GET_MAX:]
            response = self.client.batch_get_item(
                RequestItems={self.table_name: {"Keys": chunk, "ConsistentRead": consistent}},
                ReturnConsumedCapacity="TOTAL",
            )
            self.usage.add(response, writes=False)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = deserialize_item(raw)
                found[(item["pk"], item["sk"])] = item
            pending = list(response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])) + pending
        return found

    def put(self, item: Mapping[str, Any], condition: str | None = None, values: Mapping[str, Any] | None = None) -> bool:
        """Put `item`; with a condition, answer False (and write nothing) when it fails."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": serialize_item(item),
            "ReturnConsumedCapacity": "TOTAL",
        }
        if condition:
            request["ConditionExpression"] = condition
        if values:
            request["ExpressionAttributeValues"] = serialize_item(values)
        try:
            self.usage.add(self.client.put_item(**request), writes=True)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                self.usage.add(error.response, writes=True)
                return False
            raise
        return True

    # --- transactions --------------------------------------------------------------------

    def transact(self, actions: Sequence[Mapping[str, Any]]) -> None:
        """Run `actions` ({"Put"|"Update"|"ConditionCheck"|"Delete": {...}}) as one transaction.

        Items, keys and expression values are plain Python; the table name is filled in. Raises
        `TransactionCancelled` with one reason per action (None where that action was fine).
        """
        items = [self._transact_action(action) for action in actions]
        try:
            response = self.client.transact_write_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
        except ClientError as error:
            self.usage.add(error.response, writes=True)
            if (cancelled := _cancelled(error)) is None:
                raise
            raise cancelled from error
        self.usage.add(response, writes=True)

    def _transact_action(self, action: Mapping[str, Any]) -> dict[str, Any]:
        ((kind, body),) = action.items()
        request: dict[str, Any] = {"TableName": self.table_name}
        for key, value in body.items():
            if key in ("Item", "Key", "ExpressionAttributeValues"):
                request[key] = serialize_item(value)
            else:
                request[key] = value
        return {kind: request}

    def transact_get(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        """Up to 100 items read as one snapshot (TransactGetItems: serializable against write
        transactions, so no transaction is seen half-applied across them). Missing items are absent.
        Raises `TransactionCancelled` when a write transaction was in flight on one of them."""
        unique = list(dict.fromkeys(keys))
        if len(unique) > TRANSACT_GET_MAX:
            raise ValueError(f"one snapshot holds at most {TRANSACT_GET_MAX} items, not {len(unique)}")
        if not unique:
            return {}
        items = [{"Get": {"TableName": self.table_name, "Key": serialize_item({"pk": pk, "sk": sk})}} for pk, sk in unique]
        try:
            response = self.client.transact_get_items(TransactItems=items, ReturnConsumedCapacity="TOTAL")
        except ClientError as error:
            self.usage.add(error.response, writes=False)
            if (cancelled := _cancelled(error)) is None:
                raise
            raise cancelled from error
        self.usage.add(response, writes=False)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in response.get("Responses", []):
            if entry.get("Item"):
                item = deserialize_item(entry["Item"])
                found[(item["pk"], item["sk"])] = item
        return found

    # --- reads of many items -------------------------------------------------------------

    def query(self, page: PageQuery) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """The items of `page`, and the key to continue from (None after the last page)."""
        pk_name, sk_name = ("gsi1pk", "gsi1sk") if page.index_name else ("pk", "sk")
        condition = "#pk = :pk"
        values: dict[str, Any] = {":pk": page.partition}
        names = {"#pk": pk_name}
        if page.sk_max is not None:
            condition += " AND #sk <= :sk_max"
            values[":sk_max"] = page.sk_max
            names["#sk"] = sk_name
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize_item(values),
            "ReturnConsumedCapacity": "TOTAL",
        }
        if page.index_name:
            request["IndexName"] = page.index_name
        if page.limit:
            request["Limit"] = page.limit
        if page.start_key:
            request["ExclusiveStartKey"] = serialize_item(page.start_key)
        response = self.client.query(**request)
        self.usage.add(response, writes=False)
        items = [deserialize_item(i) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return items, (deserialize_item(last) if last else None)

    def scan(self) -> Iterator[dict[str, Any]]:
        """Every item of the table (for the audit and tests; paginated, consistent)."""
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True, "ReturnConsumedCapacity": "TOTAL"}
            if start:
                request["ExclusiveStartKey"] = start
            response = self.client.scan(**request)
            self.usage.add(response, writes=False)
            for raw in response.get("Items", []):
                yield deserialize_item(raw)
            start = response.get("LastEvaluatedKey")
            if not start:
                return

    def describe(self) -> str:
        """The table's status (health checks)."""
        response = self.client.describe_table(TableName=self.table_name)
        return str(response["Table"]["TableStatus"])


def _cancelled(error: ClientError) -> TransactionCancelled | None:
    """A cancelled transaction (write or snapshot read) as `TransactionCancelled`, one reason per
    action (None where that action was fine); None for any other error."""
    code = error.response["Error"]["Code"]
    if code == "TransactionCanceledException":
        reasons = [r.get("Code") if r.get("Code") not in (None, "None") else None for r in error.response.get("CancellationReasons", [])]
        return TransactionCancelled(reasons)
    if code in ("TransactionConflictException", "TransactionInProgressException"):
        return TransactionCancelled(["TransactionConflict"])
    return None
