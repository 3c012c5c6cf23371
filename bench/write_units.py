"""bench/money.py's in-process flows (part 2) priced by AWS's write arithmetic, with a batch of one
action committed as a single-item write (as the ledger does) and, for comparison, as a one-action
transaction (as it did before).

DynamoDB Local's consumed-capacity figures for a transaction are its own (a flat 4 WCU for a small
one, whatever it holds; bench/ledger.py), so each write is priced here from the items themselves,
read raw before and after it: per item, ceil(max(before, after) / 1 KB) WCU, twice that in a
transaction; an item in gsi1 (projection ALL) adds 1 WCU per KB per index write (one when it
enters, stays or leaves the index, two when its index key moves). The stamp a single write leaves
(`wtok`, 12 bytes) is counted, as it is stored.

Run: `.venv/bin/python bench/write_units.py [PAD]` (about a minute; prints bench/money.py's table
twice). PAD characters appended to the job's request move its row across KB boundaries: the stamp
costs a unit where a row sits within 12 bytes under one (bench/money.py's job row, at PAD 0, is
1,024 bytes when it completes).
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

from bench import money  # noqa: E402  (sets the environment bench/money.py runs in)
from timmy.adapters.dynamodb import DynamoStore, Usage  # noqa: E402
from timmy.ledger import ledger  # noqa: E402

KB = 1024
_priced = [0.0]
_lock = threading.Lock()


def attribute_bytes(value: Mapping[str, Any]) -> int:
    """A raw attribute value's size by DynamoDB's rules (numbers ≈ 1 + digits / 2)."""
    ((kind, inner),) = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return 1 + (len(inner.lstrip("-").replace(".", "")) + 1) // 2
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + attribute_bytes(v) + 1 for name, v in inner.items())
    if kind == "L":
        return 3 + sum(attribute_bytes(v) + 1 for v in inner)
    return sum(len(str(v)) for v in inner)


def item_bytes(item: Mapping[str, Any] | None) -> int:
    return sum(len(name.encode()) + attribute_bytes(value) for name, value in (item or {}).items())


def units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / KB))


def write_units(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None, per_kb: int) -> int:
    """What writing one item from `before` to `after` costs, with its index writes."""
    cost = units(max(item_bytes(before), item_bytes(after))) * per_kb
    indexed = [item for item in (before, after) if item and "gsi1pk" in item]
    if len(indexed) == 2 and all(before[k] == after[k] for k in ("gsi1pk", "gsi1sk")):  # type: ignore[index]
        return cost + units(max(item_bytes(before), item_bytes(after)))
    return cost + sum(units(item_bytes(item)) for item in indexed)


def _priced_by_items(write: Callable[..., None], per_kb: int, many: bool) -> Callable[..., None]:
    def priced(store: DynamoStore, actions: Any) -> None:
        keys = []
        for action in actions if many else [actions]:
            ((kind, body),) = action.items()
            if kind != "ConditionCheck":
                key = body.get("Key") or body["Item"]
                keys.append({"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}})

        def raw(key: dict[str, Any]) -> dict[str, Any] | None:
            return store.client.get_item(TableName=store.table_name, Key=key, ConsistentRead=True).get("Item")  # type: ignore[no-any-return]

        before = [raw(key) for key in keys]
        write(store, actions)
        cost = sum(write_units(b, raw(key), per_kb) for b, key in zip(before, keys, strict=True))
        with _lock:
            _priced[0] += cost

    return priced


def main() -> None:
    DynamoStore.transact = _priced_by_items(DynamoStore.transact, 2, many=True)  # type: ignore[method-assign]
    DynamoStore.write = _priced_by_items(DynamoStore.write, 1, many=False)  # type: ignore[method-assign]
    local_snapshot = Usage.snapshot

    def snapshot(usage: Usage) -> tuple[int, float, float]:
        """bench/money.py's columns, read as: calls, AWS WCU priced here, DynamoDB Local's WCU."""
        calls, local_write_units, _reads = local_snapshot(usage)
        with _lock:
            return calls, _priced[0], local_write_units

    Usage.snapshot = snapshot  # type: ignore[method-assign]
    money.through_make_run = lambda: None  # type: ignore[assignment]
    if len(sys.argv) > 1:
        money.JOB = {**money.JOB, "request": money.JOB["request"] + " " + "s" * int(sys.argv[1])}
    single = ledger.SINGLE_WRITE_KINDS
    for label, kinds in (("a batch of one action as a transaction (before)", frozenset[str]()), ("as a single-item write", single)):
        print(f"\n=== {label}: the columns read calls, AWS WCU (priced here), DynamoDB Local's WCU ===")
        ledger.SINGLE_WRITE_KINDS = kinds  # type: ignore[misc]
        money.main()
    ledger.SINGLE_WRITE_KINDS = single  # type: ignore[misc]


if __name__ == "__main__":
    main()
