"""Every function's cold start against `import boto3`, in one run (goal: the import <= 1.3x each).

Each sample is a fresh interpreter importing the handler module the way Lambda does (the
function's CodeUri and the layer on sys.path, Lambda's environment with the template's defaults:
X-Ray SDK off), each after a fresh interpreter that only does `import boto3`; the figures are the
medians, a ratio the median of those pairs' ratios. Interpreter start-up is excluded from both.

The import is only part of a cold start: Lambda's INIT phase (the import) is followed by the first
invocation, which pays for everything deferred to it (the services and boto3, the route's
validation models, imports made inside a route). So the same interpreter then answers one of the
function's sample events (events/<function>/, against DynamoDB Local) twice: the first answer's
time minus the second's is what the first request pays once. Both are printed, and their sum is the
cold start a caller waits for (without Lambda's own overhead and the network: DynamoDB is local,
secrets are environment values, the price is fixed). `--import-only` skips the requests (no Java).

Every module is read from its .pyc (bench/estimate.py), as the deployed layer (shared/Makefile) and
the runtime have them; but not the functions' own code, which SAM's python3.12 build method ships
without. `--without-layer-bytecode` measures the layer as that method built it before
shared/Makefile: no .pyc for anything but the standard library and the runtime's boto3 and
s3transfer (taking the layer's botocore, pulled in by the X-Ray SDK, as the one imported).

Then each import deferred to the first request that needs it (LAZY: one route's own, or the use
case every route builds through timmy_http.services) is timed on its own, after the handler's
import, in a fresh interpreter: what that first request pays for it.

Run: .venv/bin/python bench/coldstart.py [--runs N] [--import-only] [--without-layer-bytecode]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import sysconfig
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimate import BOTO3_IMPORT, BYTECODE_DIR, LAMBDA_ENV, ROOT, fresh_interpreter, import_seconds

sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
from local.template import resources  # noqa: E402

GOAL = 1.3
RUNTIME_PACKAGES = ("boto3", "s3transfer")  # the Lambda runtime's own, with their .pyc; the layer has the rest

# function -> (CodeUri, handler module), read from template.yaml (every function, as deployed)
FUNCTIONS = {
    name.removesuffix("Function").lower(): (str(f["Properties"]["CodeUri"]).rstrip("/"), str(f["Properties"]["Handler"]).rsplit(".", 1)[0])
    for name, f in resources("AWS::Serverless::Function").items()
}

# The first request each function answers: one of its sample events (tests/e2e/test_events.py
# keeps every one answering without a 5xx), a route that reads the table where there is one.
FIRST_REQUEST = {
    "meta": "health.json",
    "estimate": "estimate-get.json",
    "jobs": "get.json",
    "sessions": "get.json",
    "webhooks": "lightning-forged.json",
    "dev": "invoices.json",
    "identity": "me.json",
    "admin": "grants.json",
    "settlement": "invoice-notified-unknown.json",
    "worker": "job-execute-unknown.json",
    "sweeper": "schedule.json",
}

# Imports a handler defers to the first request that needs them: (module, the requests that pay for it).
LAZY: dict[str, list[tuple[str, str]]] = {
    "estimate": [
        ("timmy.identity.nip98", "a request signed with NIP-98 (timmy_http.caller)"),
        ("timmy.payments.donations", "POST /api/pool/donations"),
    ],
    "jobs": [
        ("timmy.jobs.service", "every route: the use case, built by timmy_http.services"),
        ("timmy.identity.nip98", "a request signed with NIP-98 (timmy_http.caller)"),
    ],
    "sessions": [
        ("timmy.sessions.service", "every route: the use case, built by timmy_http.services"),
        ("timmy.identity.nip98", "a request signed with NIP-98 (timmy_http.caller)"),
    ],
    "dev": [("urllib.request", "POST /dev/lightning/pay (the simulated node's webhook notification)")],
    "identity": [("timmy.identity.nip98", "every route but a refusal (timmy_http.caller)")],
    "admin": [
        ("timmy.ledger.invariants", "GET /api/admin/audit"),
        ("timmy.identity.nostr", "PUT /api/admin/identities/{pubkey}"),
        ("timmy.identity.service", "PUT /api/admin/identities/{pubkey}"),
    ],
}

CHILD = """
import json, sys, time
t = time.perf_counter()
import {module} as handler_module
imported = time.perf_counter() - t
answers = []
event_file = {event_file!r}
if event_file:
    class Context:
        function_name = {function!r}
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:" + function_name
        memory_limit_in_mb = 512
        aws_request_id = "bench"
        log_group_name = log_stream_name = "bench"
        def get_remaining_time_in_millis(self): return 10_000
    for _ in range(2):
        event = json.loads(open(event_file).read())
        t = time.perf_counter()
        result = handler_module.lambda_handler(event, Context())
        answers.append(time.perf_counter() - t)
        status = result.get("statusCode", 200) if isinstance(result, dict) else 200
        if status == 500 or (isinstance(result, dict) and result.get("batchItemFailures")):  # health's 503: no queues here
            raise SystemExit(f"{{event_file}} answered {{result}}")
print(json.dumps([imported, *answers]))
"""

# What any HTTP function pays before its own code: Powertools' resolver with validation (pydantic,
# the OpenAPI params), Logger and Metrics, the resolver imported as the functions do (without the
# event_handler package's other resolvers: timmy_http.event_handler). No handler can import in less.
FLOOR = """
import time
t = time.perf_counter()
from aws_lambda_powertools import Logger, Metrics
from timmy_http.event_handler import APIGatewayHttpResolver
APIGatewayHttpResolver(enable_validation=True)
Logger(service="timmy"); Metrics(namespace="Timmy", service="timmy")
print(time.perf_counter() - t)
"""

LAZY_CHILD = """
import time
import {module}
t = time.perf_counter()
import {lazy}
print(time.perf_counter() - t)
"""


def child_code(function: str, module: str, event_file: str) -> str:
    return CHILD.format(module=module, function=function, event_file=event_file)


def run_child(code: str, path: list[Path]) -> list[float]:
    """A fresh interpreter's timings (its last line of output: a float or a JSON list of them)."""
    value = json.loads(fresh_interpreter(code, path))
    return value if isinstance(value, list) else [value]


@contextmanager
def first_request_environment() -> Iterator[None]:
    """DynamoDB Local with a fresh table, and the local stack's settings, for the sample events."""
    from local.dynamodb import DynamoDBLocal

    database = DynamoDBLocal().start()
    saved = dict(LAMBDA_ENV)
    try:
        table = f"bench-{uuid.uuid4().hex[:8]}"
        database.create_table(table)
        with tempfile.TemporaryDirectory() as data_dir:
            LAMBDA_ENV.update(
                TABLE_NAME=table,
                AWS_ENDPOINT_URL_DYNAMODB=database.endpoint_url,
                ADMIN_API_KEY="local-admin-key",  # the key the sample events carry
                TOKEN_SECRET="bench-token-secret",
                PRICE_SOURCE="fixed",
                LIGHTNING_BACKEND="simulated",
                TIMMY_DATA_DIR=data_dir,
            )
            yield
    finally:
        LAMBDA_ENV.clear()
        LAMBDA_ENV.update(saved)
        database.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--import-only", action="store_true", help="no first requests (DynamoDB Local needs Java)")
    parser.add_argument(
        "--without-layer-bytecode", action="store_true", help="the layer without .pyc files, as built before shared/Makefile"
    )
    args = parser.parse_args()
    paths = {name: [ROOT / code_uri, ROOT / "shared"] for name, (code_uri, _) in FUNCTIONS.items()}
    events = {name: "" if args.import_only else str(ROOT / "events" / name / FIRST_REQUEST[name]) for name in FUNCTIONS}
    with first_request_environment() if not args.import_only else _nothing():
        import_seconds(BOTO3_IMPORT, [])  # compile the .pyc files once, as a deployment does
        import_seconds(FLOOR, [ROOT / "shared"])
        for name, (_, module) in FUNCTIONS.items():
            run_child(child_code(name, module, events[name]), paths[name])
        # Each handler's sample is paired with an `import boto3` just before it, and its ratio is the
        # median of the pairs' ratios: other processes' load on the machine changes both alike.
        samples: dict[str, list[list[float]]] = {name: [] for name in FUNCTIONS}
        boto3_before: dict[str, list[float]] = {name: [] for name in [*FUNCTIONS, "floor"]}
        floor_samples: list[float] = []
        with deployed_bytecode(args.without_layer_bytecode):
            for _ in range(args.runs):
                boto3_before["floor"].append(import_seconds(BOTO3_IMPORT, []))
                floor_samples.append(import_seconds(FLOOR, [ROOT / "shared"]))
                for name, (_, module) in FUNCTIONS.items():
                    boto3_before[name].append(import_seconds(BOTO3_IMPORT, []))
                    samples[name].append(run_child(child_code(name, module, events[name]), paths[name]))
    boto3_ms = statistics.median(t for times in boto3_before.values() for t in times) * 1000
    layer = "WITHOUT the layer's .pyc files (as built before shared/Makefile)" if args.without_layer_bytecode else "the layer's .pyc files"
    print(f"cold start ({args.runs} fresh interpreters each, medians; {layer}; goal: import <= {GOAL}x import boto3)")
    print(f"  {'import boto3':<20} {boto3_ms:7.1f} ms")
    floor_ratio = statistics.median(f / b for f, b in zip(floor_samples, boto3_before["floor"], strict=True))
    floor_ms = statistics.median(floor_samples) * 1000
    print(f"  {'Powertools floor':<20} {floor_ms:7.1f} ms {floor_ratio:5.2f}x       (the resolver with validation, Logger, Metrics)")
    header = "" if args.import_only else "   first request (a second one)   import + first request"
    print(f"  {'handler':<20} {'import':>10} {'ratio':>6}      {header}")
    worst = 0.0
    for name in FUNCTIONS:
        import_ms = statistics.median(s[0] for s in samples[name]) * 1000
        ratio = statistics.median(s[0] / b for s, b in zip(samples[name], boto3_before[name], strict=True))
        worst = max(worst, ratio)
        line = f"  {name:<20} {import_ms:7.1f} ms {ratio:5.2f}x {'ok  ' if ratio <= GOAL else 'OVER'}"
        if not args.import_only:
            first_ms = statistics.median(s[1] for s in samples[name]) * 1000
            second_ms = statistics.median(s[2] for s in samples[name]) * 1000
            total_ms = statistics.median(s[0] + s[1] for s in samples[name]) * 1000
            total_ratio = statistics.median((s[0] + s[1]) / b for s, b in zip(samples[name], boto3_before[name], strict=True))
            line += f"   {first_ms:7.1f} ms ({second_ms:5.1f} ms)   {total_ms:7.1f} ms {total_ratio:5.2f}x"
            line += f"  {FIRST_REQUEST[name]}"
        print(line)
    print("imports deferred to the first request that needs them (paid once, after the handler's import):")
    for name, deferred in LAZY.items():
        module = FUNCTIONS[name][1]
        for lazy, route in deferred:
            if lazy in _modules_after_import(module, paths[name]):
                print(f"  {name:<20} {lazy}: imported with the handler, not deferred (see its imports)")
                worst = max(worst, GOAL + 1)
                continue
            code = LAZY_CHILD.format(module=module, lazy=lazy)
            run_child(code, paths[name])  # its .pyc files
            lazy_ms = statistics.median(run_child(code, paths[name])[0] for _ in range(args.runs))
            print(f"  {name:<20} {lazy_ms * 1000:7.1f} ms  {lazy}  ({route})")
    return 0 if worst <= GOAL else 1


@contextmanager
def deployed_bytecode(without_layer: bool) -> Iterator[None]:
    """The .pyc files a deployment has: the functions' own code has none (SAM's python3.12 method);
    without the layer's, only the standard library and the runtime's boto3 and s3transfer have them."""
    prune = [ROOT / "functions"]
    if without_layer:
        site_packages = Path(sysconfig.get_paths()["purelib"])
        prune += [ROOT / "shared", *(p for p in site_packages.iterdir() if p.name not in RUNTIME_PACKAGES)]
    for source in prune:
        cached = Path(BYTECODE_DIR) / source.absolute().relative_to("/")  # the path as imported, symlinks kept
        if source.is_dir():
            shutil.rmtree(cached, ignore_errors=True)
        for pyc in cached.parent.glob(f"{source.stem}.*.pyc") if source.suffix == ".py" else ():
            pyc.unlink()
    LAMBDA_ENV["PYTHONDONTWRITEBYTECODE"] = "1"  # compiled on every import, as on a read-only /opt
    try:
        yield
    finally:
        del LAMBDA_ENV["PYTHONDONTWRITEBYTECODE"]


def _modules_after_import(module: str, path: list[Path]) -> set[str]:
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    return set(json.loads(fresh_interpreter(code, path)))


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
