"""The estimate function's cold-start import time (against `import boto3`) and the estimate
route's latency through the local gateway.

1. Cold start: fresh interpreters import the handler module the way Lambda does (the function's
   folder and the layer on sys.path, Lambda's environment variables), alternating with fresh
   interpreters that only `import boto3`; the ratio of the medians is the figure (goal <= 1.3x,
   keep <= 1.5x). Interpreter start-up itself is excluded from both.
2. Latency: DynamoDB Local and the local gateway (local/gateway.py, real HTTP on a local port, the
   API Gateway v2 events of template.yaml's routes), sequential requests on one keep-alive
   connection, after warm-up; p50/p90/p99 of GET and POST /api/estimate (fixed price source, the
   local default, so no exchange is called).

Run: .venv/bin/python bench/estimate.py [--cold-runs N] [--requests N]
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]

LAMBDA_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "timmy",
    "POWERTOOLS_METRICS_NAMESPACE": "Timmy",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_TRACE_DISABLED": "true",  # template.yaml's default (parameter XRaySdkTracingDisabled)
    "TABLE_NAME": "timmy",
}

HANDLER_IMPORT = "import time; t = time.perf_counter(); import app; print(time.perf_counter() - t)"
BOTO3_IMPORT = "import time; t = time.perf_counter(); import boto3; print(time.perf_counter() - t)"
XRAY_IMPORT = "import time; t = time.perf_counter(); import aws_xray_sdk.core; print(time.perf_counter() - t)"


# Every module is read from its .pyc, as in Lambda: the layer ships them (shared/Makefile) and so does
# the runtime. The bench's own cache (not the checkout's __pycache__, which a machine may never write)
# is filled by the first interpreter that imports a module; callers run each code once before timing.
BYTECODE_DIR = tempfile.mkdtemp(prefix="timmy-bench-pyc-")
atexit.register(shutil.rmtree, BYTECODE_DIR, ignore_errors=True)


def fresh_interpreter(code: str, path: list[Path]) -> str:
    """The last line `code` prints, run in a fresh interpreter with Lambda's environment and `path`."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "POWERTOOLS", "AWS_"))}, **LAMBDA_ENV}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in path)
    env["PYTHONPYCACHEPREFIX"] = BYTECODE_DIR
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd="/", capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the fresh interpreter failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def import_seconds(code: str, path: list[Path]) -> float:
    return float(fresh_interpreter(code, path))


def cold_start(runs: int) -> None:
    handler_path = [ROOT / "functions" / "estimate", ROOT / "shared"]
    for code in (HANDLER_IMPORT, BOTO3_IMPORT, XRAY_IMPORT):
        import_seconds(code, handler_path)  # compile the .pyc files once, as a deployment does
    handler_times, boto3_times, xray_times = [], [], []
    for _ in range(runs):
        handler_times.append(import_seconds(HANDLER_IMPORT, handler_path))
        boto3_times.append(import_seconds(BOTO3_IMPORT, []))
        xray_times.append(import_seconds(XRAY_IMPORT, []))
    handler_ms, boto3_ms = statistics.median(handler_times) * 1000, statistics.median(boto3_times) * 1000
    print(f"cold start ({runs} fresh interpreters each, medians):")
    print(f"  import estimate handler (functions/estimate/app.py)  {handler_ms:7.1f} ms")
    print(f"  import boto3                                         {boto3_ms:7.1f} ms")
    print(
        f"  of which elsewhere: import aws_xray_sdk.core alone   {statistics.median(xray_times) * 1000:7.1f} ms  (Powertools Tracer, timmy_http.observability)"
    )
    ratio = handler_ms / boto3_ms
    verdict = "meets the 1.3x goal" if ratio <= 1.3 else "within the 1.5x limit" if ratio <= 1.5 else "OVER the 1.5x limit"
    print(f"  ratio handler / boto3                                {ratio:7.2f}x  ({verdict})")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def latency(requests: int) -> None:
    os.environ.update({k: v for k, v in LAMBDA_ENV.items() if k not in os.environ or k == "TABLE_NAME"})
    os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    os.environ["PRICE_SOURCE"] = "fixed"
    from local.dynamodb import DynamoDBLocal
    from local.gateway import Gateway
    from local.handlers import HandlerLoader

    database = DynamoDBLocal().start()
    gateway: Gateway | None = None
    try:
        table = f"bench-{uuid.uuid4().hex[:8]}"
        database.create_table(table)
        os.environ["TABLE_NAME"], os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = table, database.endpoint_url
        gateway = Gateway(0, HandlerLoader(watch=False)).start()
        connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
        query = "/api/estimate?" + urlencode(
            {
                "request": "Summarise the Lightning Network whitepaper in five bullet points.",
                "model": "gpt-5-mini",
                "max_output_tokens": "800",
            }
        )
        body = json.dumps({"request": "Write a haiku about sats. " * 40, "model": "claude-haiku-4-5", "max_output_tokens": 300})
        print(f"latency through the local gateway ({gateway.url}, DynamoDB Local, {requests} sequential requests after warm-up):")
        for label, method, target, payload in (
            ("GET  /api/estimate", "GET", query, None),
            ("POST /api/estimate", "POST", "/api/estimate", body),
        ):
            times = []
            for index in range(requests + 20):
                started = time.perf_counter()
                connection.request(method, target, body=payload, headers={"Content-Type": "application/json"} if payload else {})
                response = connection.getresponse()
                response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"{method} {target} answered {response.status}")
                if index >= 20:
                    times.append(elapsed * 1000)
            print(
                f"  {label}  p50 {percentile(times, 50):6.2f} ms   p90 {percentile(times, 90):6.2f} ms   p99 {percentile(times, 99):6.2f} ms"
            )
        connection.close()
        in_process(gateway, query, body, requests)
    finally:
        if gateway is not None:
            gateway.stop()
        database.stop()


def in_process(gateway: Any, query: str, body: str, requests: int) -> None:
    """The same requests through the gateway's routing and events, without the socket."""
    print("the same, in process (the gateway's routing and API Gateway v2 events, no socket):")
    headers = [("host", "127.0.0.1"), ("content-type", "application/json")]
    for label, method, target, payload in (
        ("GET  /api/estimate", "GET", query, b""),
        ("POST /api/estimate", "POST", "/api/estimate", body.encode()),
    ):
        times = []
        for index in range(requests + 20):
            started = time.perf_counter()
            status, _headers, _answer = gateway.handle(method, target, headers, payload, "127.0.0.1")
            elapsed = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"{method} {target} answered {status}")
            if index >= 20:
                times.append(elapsed * 1000)
        print(f"  {label}  p50 {percentile(times, 50):6.2f} ms   p90 {percentile(times, 90):6.2f} ms   p99 {percentile(times, 99):6.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description="estimate function: cold-start import ratio and route latency")
    parser.add_argument("--cold-runs", type=int, default=9)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    cold_start(args.cold_runs)
    latency(args.requests)


if __name__ == "__main__":
    main()
