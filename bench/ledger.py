"""Grants (reserve + settle) against DynamoDB Local, for 1, 8 and 32 threads, beside the bare
DynamoDB round trips a grant is made of, on the same DynamoDB Local in the same run.

Two ways to grant: `grant` is the happy path (the reservation held optimistically, one
transaction, then settled with the `Reservation` in hand, one transaction: 2 round trips);
`grant/rd` settles by request hash alone, reading the hold first (3 round trips, as a caller that
kept no reservation). Beside them the bare round trips with no ledger logic: `bare2` (the two
transactions of a grant) and `bare4` (read + transaction twice, what a grant was before).

Prints, per thread count: grants per second, p50/p99 latency, DynamoDB calls, read and write
capacity per grant, and the ratios to the bare round trips and to the minimum capacity of
docs/ledger.md. Run: `make bench` or `.venv/bin/python bench/ledger.py`.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(name, value)

from local.dynamodb import DynamoDBLocal  # noqa: E402
from timmy.adapters.dynamodb import DynamoStore  # noqa: E402
from timmy.clock import SystemClock  # noqa: E402
from timmy.config import Settings  # noqa: E402
from timmy.free_tier.service import FreeTierService  # noqa: E402
from timmy.identity.caller import Caller  # noqa: E402
from timmy.ledger.ledger import Ledger  # noqa: E402

THREAD_COUNTS = (1, 8, 32)
GRANTS_PER_THREAD = 60
# docs/ledger.md: a grant writes 4 items transactionally to reserve and 6 to settle, each under
# 1 KB; a transactional write costs 2 WCU per item. On the happy path it reads nothing.
# The sparse pending index adds one GSI write when a hold is made and one when it resolves.
MINIMUM_WRITE_UNITS_PER_GRANT = 2 * (4 + 6) + 2
MINIMUM_READ_UNITS_PER_GRANT = 0
MINIMUM_CALLS_PER_GRANT = 2
KB = 1024


def item_size_bytes(item: dict[str, object]) -> int:
    """An item's size by DynamoDB's rules: attribute names plus values (numbers ≈ 1 + digits/2)."""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, bool) or value is None:
            size += 1
        elif isinstance(value, int | float):
            size += 1 + (len(str(abs(value)).replace(".", "")) + 1) // 2
        else:
            size += len(str(value).encode())
    return size


class CountingStore:
    """Counts the items each transaction writes, for AWS's capacity arithmetic (DynamoDB Local
    reports a flat 4 WCU for any small transaction, whatever it holds)."""

    def __init__(self, store: DynamoStore):
        self.store = store
        self.items_written = 0
        self.gsi_writes = 0

    def transact(self, actions: list[dict[str, object]]) -> None:
        self.store.transact(actions)
        self.items_written += len(actions)
        for action in actions:
            body = next(iter(action.values()))
            if "gsi1pk" in str(body.get("Item", {})) or "REMOVE gsi1pk" in str(body.get("UpdateExpression", "")):  # type: ignore[union-attr]
                self.gsi_writes += 1

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(threads: int, operation: Callable[[int], None], count: int) -> tuple[float, list[float]]:
    latencies: list[float] = []

    def timed(index: int) -> None:
        started = time.perf_counter()
        operation(index)
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(timed, range(count)))
    return time.perf_counter() - started, latencies


def fresh_store(server: DynamoDBLocal) -> DynamoStore:
    name = f"timmy-bench-{uuid.uuid4().hex[:8]}"
    server.create_table(name)
    return DynamoStore(name, client=server.client())


def grant_operation(store: DynamoStore, *, with_reservation: bool = True) -> Callable[[int], None]:
    settings = Settings(pool_seed_sats=10**12, free_tier_budget_elite=10**9)
    service = FreeTierService(Ledger(store, SystemClock()), settings, SystemClock())  # type: ignore[arg-type]
    service.pool_status()  # past the cold start: seeded, and the seed seen
    callers = [Caller(f"{i:064x}", "elite") for i in range(64)]

    def grant(index: int) -> None:
        caller = callers[index % len(callers)]
        _, reservation = service.decide_and_reserve(caller, 25, f"bench-{index}")
        assert reservation is not None
        service.record_grant(caller.pubkey, f"bench-{index}", 20, 25, reservation=reservation if with_reservation else None)

    return grant


def grant_reading_operation(store: DynamoStore) -> Callable[[int], None]:
    return grant_operation(store, with_reservation=False)


def bare2_operation(store: DynamoStore) -> Callable[[int], None]:
    """A grant's round trips on the happy path with no ledger logic: write 4 items, write 6."""
    return bare_operation(store, reads=False)


def bare_operation(store: DynamoStore, reads: bool = True) -> Callable[[int], None]:
    """The same round trips with no ledger logic: read 3, write 4, read 2, write 6 items."""

    def update(pk: str, attribute: str = "n") -> dict[str, object]:
        return {
            "Update": {"Key": {"pk": pk, "sk": "S"}, "UpdateExpression": f"ADD {attribute} :one", "ExpressionAttributeValues": {":one": 1}}
        }

    def bare(index: int) -> None:
        mine = f"bare-{index}"
        if reads:
            store.batch_get([("POOL", "S"), (f"DAY{index % 64}", "S"), (mine, "S")])
        store.transact(
            [{"Put": {"Item": {"pk": mine, "sk": "S", "amount": 25}}}, update("POOL"), update("REVENUE"), update(f"DAY{index % 64}")]
        )
        if reads:
            store.batch_get([(mine, "S"), ("POOL", "S")])
        store.transact(
            [
                update(mine, "posted"),
                update("POOL", "p"),
                update("REVENUE", "p"),
                update(f"DAY{index % 64}", "p"),
                {"Put": {"Item": {"pk": f"G{index}", "sk": "S"}}},
                update("STATS"),
            ]
        )

    return bare


def measure(server: DynamoDBLocal, make: Callable[[DynamoStore], Callable[[int], None]], threads: int) -> dict[str, float]:
    store = fresh_store(server)
    counting = CountingStore(store)
    operation = make(counting)  # type: ignore[arg-type]
    count = GRANTS_PER_THREAD * threads
    calls0, write0, read0 = store.usage.snapshot()
    elapsed, latencies = run(threads, operation, count)
    calls1, write1, read1 = store.usage.snapshot()
    largest_item = max(item_size_bytes(item) for item in store.scan())
    units_per_item = 2 * -(-largest_item // KB)  # transactional: 2 WCU per KB, per item
    return {
        "aws_wcu": (counting.items_written * units_per_item + counting.gsi_writes * -(-largest_item // KB)) / count,
        "largest_item_bytes": largest_item,
        "per_second": count / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "calls": (calls1 - calls0) / count,
        "wcu": (write1 - write0) / count,
        "rcu": (read1 - read0) / count,
    }


WORKLOADS: dict[str, Callable[[DynamoStore], Callable[[int], None]]] = {
    "grant": grant_operation,
    "grant/rd": grant_reading_operation,
    "bare2": bare2_operation,
    "bare4": bare_operation,
}


def main() -> None:
    server = DynamoDBLocal().start()
    try:
        # Warm the JVM (JIT) on every workload so the first thread count is not charged for it.
        for _ in range(3):
            for make in WORKLOADS.values():
                measure(server, make, 4)
        print(f"DynamoDB Local, {GRANTS_PER_THREAD} grants per thread; a grant = decide_and_reserve, then record_grant")
        print(
            f"minimum per grant (docs/ledger.md): {MINIMUM_CALLS_PER_GRANT} calls, {MINIMUM_WRITE_UNITS_PER_GRANT} WCU, {MINIMUM_READ_UNITS_PER_GRANT} RCU"
        )
        print("WCU local: what DynamoDB Local reports; WCU AWS: items written × 2 per KB (transactional) + GSI writes")
        header = f"{'threads':>7} {'what':>8} {'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6} {'WCU local':>10} {'WCU AWS':>8} {'RCU':>6} {'item max':>9}"
        print(header)
        for threads in THREAD_COUNTS:
            rows = {what: measure(server, make, threads) for what, make in WORKLOADS.items()}
            for what, row in rows.items():
                print(
                    f"{threads:>7} {what:>8} {row['per_second']:>8.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['calls']:>6.2f} "
                    f"{row['wcu']:>10.1f} {row['aws_wcu']:>8.1f} {row['rcu']:>6.1f} {row['largest_item_bytes']:>8.0f}B"
                )
            grant, bare2, bare4 = rows["grant"], rows["bare2"], rows["bare4"]
            print(
                f"{threads:>7}    ratio grant: time p50 {grant['p50_ms'] / bare2['p50_ms']:.2f}x bare2 "
                f"({grant['p50_ms'] / bare4['p50_ms']:.2f}x bare4, {grant['p50_ms'] / rows['grant/rd']['p50_ms']:.2f}x grant/rd), "
                f"throughput {bare2['per_second'] / grant['per_second']:.2f}x below bare2, "
                f"WCU (AWS) {grant['aws_wcu'] / MINIMUM_WRITE_UNITS_PER_GRANT:.2f}x of minimum, calls {grant['calls']:.2f} (goal 2)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
