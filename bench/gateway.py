"""p50 and p99 through the local gateway on DynamoDB Local, against `sam local start-api`'s ~720 ms.

Starts the same parts `make run` does (in memory, free ports), warms each route once (the cold
start, timed), then times sequential requests over one keep-alive connection, then 32 concurrent
clients (BENCH_CLIENTS) against execution environments that grow up to 32; last, what hot reload's
change detection costs.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPConnection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "300"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "32"))
SAM_LOCAL_MS = 720  # reported per call for sam local start-api with DynamoDB Local


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def timed(port: int, path: str, count: int, timeout: float = 30) -> list[float]:
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status != 200:
            raise SystemExit(f"GET {path} answered {response.status}")
    connection.close()
    return samples


def print_change_detection() -> None:
    """What hot reload's change detection costs: one scan, in the watcher thread, never per request."""
    from local.environments import WATCH_INTERVAL_SECONDS
    from local.handlers import _code_fingerprint, _python_files

    files = sum(1 for _ in _python_files())
    scans = 200
    started = time.perf_counter()
    for _ in range(scans):
        _code_fingerprint()
    scan_ms = (time.perf_counter() - started) * 1000 / scans
    print(
        f"change detection: one scan of {files} .py files {scan_ms:.2f} ms, in the watcher thread every {WATCH_INTERVAL_SECONDS} s"
        f" ({scan_ms / (WATCH_INTERVAL_SECONDS * 1000) * 100:.2f} % of a core), not on the request path"
    )


def main() -> None:
    import logging
    import warnings

    for name, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "TABLE_NAME": "timmy-bench",
        "PRICE_SOURCE": "fixed",
    }.items():
        os.environ.setdefault(name, value)
    warnings.filterwarnings("ignore")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from local.dynamodb import DynamoDBLocal
    from local.environments import ExecutionEnvironments
    from local.gateway import Gateway
    from local.sqs import LocalSQS

    dynamodb = DynamoDBLocal().start()
    sqs = LocalSQS()
    try:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb.endpoint_url
        dynamodb.create_table(os.environ["TABLE_NAME"])
        sqs.start().export()
        loader = ExecutionEnvironments(watch=True, concurrency=CLIENTS)
        gateway = Gateway(0, loader).start()
        pool_served = loader.specs["EstimateFunction"].exists
        routes = ["/api/health", "/api/pool" if pool_served else "/api/health"]
        print(f"{REQUESTS} sequential requests per route, one keep-alive connection, after one cold-start call")
        for path in dict.fromkeys(routes):
            cold = timed(gateway.port, path, 1)[0]
            print(f"GET {path:<14} first request (cold start: a new environment imports the function) {cold:6.0f} ms")
            samples = timed(gateway.port, path, REQUESTS)
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            what = "DescribeTable + 2x GetQueueAttributes" if path == "/api/health" else "reads the pool from the table"
            print(
                f"GET {path:<14} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  mean {statistics.fmean(samples):6.1f} ms  ({what}; sam local start-api ~{SAM_LOCAL_MS} ms: {SAM_LOCAL_MS / p50:.0f}x)"
            )
        path = routes[-1]
        per_client = max(1, REQUESTS // CLIENTS)
        # A first round cold-starts the environments, a few at once (one per core): slow on a small machine.
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as clients:
            list(clients.map(lambda _: timed(gateway.port, path, 2, timeout=300), range(CLIENTS)))
        pool = loader.pools["EstimateFunction"]
        print(
            f"GET {path:<14} warm-up of {CLIENTS} concurrent clients: {pool.cold_starts} cold starts in {time.perf_counter() - started:.1f} s"
            f" (at most {loader.cold_starts_at_once} at once; last init {pool.last_init_ms:.0f} ms)"
        )
        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as clients:
            batches = list(clients.map(lambda _: timed(gateway.port, path, per_client), range(CLIENTS)))
        elapsed = time.perf_counter() - started
        samples = [ms for batch in batches for ms in batch]
        print(
            f"GET {path:<14} {CLIENTS} concurrent clients: p50 {percentile(samples, 50):6.1f} ms  p99 {percentile(samples, 99):6.1f} ms"
            f"  {len(samples) / elapsed:6.0f} req/s (sequential: {1000 / p50:.0f} req/s at p50)  {loader.pools['EstimateFunction'].cold_starts} environments"
        )
        gateway.stop()
        loader.stop()
        print_change_detection()
    finally:
        sqs.stop()
        dynamodb.stop()


if __name__ == "__main__":
    main()
