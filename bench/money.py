"""Jobs and sessions on the local stack's parts, in process: DynamoDB Local, moto's SQS, the
simulated Lightning node, the real handlers (issues 12 and 13).

Part 1, through `make run` itself (`python -m local.run`, as bench/settlement.py starts it): an
elite identity's free jobs one after another, each timed as a client sees it: `POST /api/jobs`, then
`GET /api/jobs/{id}` every POLL_SECONDS until `complete` — the poller's long poll, the worker in its
execution environment, the deterministic executor, the ledger (goal ≤ 250 ms p50).

Part 2, in process (an environment's store counters are out of reach): DynamoDB calls and consumed
capacity of a whole free job, a whole paid job and a session request (free and paid) beside the
fewest calls the flow could make; session request latency; quoted ÷ charged sats on
bench/prompts.jsonl when the output reaches its cap (goal ≤ 1.25×).

The first measure of POST → complete (1.6 s) was this script's own wait: it drained the work queue
until a receive came back empty, and an empty receive is a whole 1 s long poll. A job is complete
long before; the stack's own poller hands a message over as soon as moto's long poll wakes on it.
Run: `make bench` or `.venv/bin/python bench/money.py` (`--in-process`: part 2 only, without
starting `make run`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
for name, value in {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "ADMIN_API_KEY": "bench-admin-key",
    "TOKEN_SECRET": "bench-token-secret",
    "POWERTOOLS_LOG_LEVEL": "ERROR",
    "POWERTOOLS_METRICS_NAMESPACE": "Timmy",
    "PRICE_SOURCE": "fixed",
    "LIGHTNING_BACKEND": "simulated",
    "MAX_UNPAID_JOBS": "1000",
}.items():
    os.environ.setdefault(name, value)
os.environ["TIMMY_DATA_DIR"] = tempfile.mkdtemp(prefix="timmy-bench-")

from local.dynamodb import DynamoDBLocal  # noqa: E402
from local.handlers import HandlerLoader  # noqa: E402
from local.poller import Poller, mappings_from  # noqa: E402
from local.sqs import LocalSQS  # noqa: E402
from tests.api_client import ApiClient  # noqa: E402
from timmy.identity.signer import Keys  # noqa: E402
from timmy.pricing.service import TokenUsage  # noqa: E402
from timmy_http.services import reset_services  # noqa: E402

RUNS = 30
POLL_SECONDS = 0.005
COMPLETE_SECONDS_MAX = 30
JOB = {"request": "Write a haiku about the sea", "model": "claude-sonnet-4-5", "max_output_tokens": 4000}
# The fewest DynamoDB calls each flow could make: one read to decide, one transaction per phase
# (a job's work lease, taken before the executor runs, is a phase: the provider is paid once).
# A session request's 3 is below what its answer allows today: the token's read comes first (the
# session names the identity), the identity's read next (its tier and block, read with the balance),
# and a paid request's balance is read after its charge (a transaction answers no values): 4 each.
MINIMUM_CALLS = {"free job": 5, "paid job": 7, "session request (free)": 3, "session request (paid)": 3}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def through_make_run() -> None:
    """POST → complete of free jobs on `python -m local.run`, as a client sees it."""
    from bench.settlement import LocalRun

    stack = LocalRun()
    try:
        stack.wait_ready()
        keys = Keys.generate()
        admin = {"authorization": "Bearer local-admin-key"}
        assert stack.call("PUT", f"/api/admin/identities/{keys.pubkey}", {"tier": "elite"}, admin)[0] == 200
        stack.call("POST", "/api/admin/pool/topup", {"amount_sats": 10_000_000, "note": "bench"}, admin)
        url = f"http://127.0.0.1:{stack.port}/api/identity/token"
        status, token = stack.call("POST", "/api/identity/token", None, {"authorization": keys.nip98_header(url, "POST")})
        assert status == 200, token
        bearer = {"authorization": f"Bearer {token['token']}"}
        post_times: list[float] = []
        complete_times: list[float] = []
        for run in range(RUNS + 1):
            started = time.perf_counter()
            status, created = stack.call("POST", "/api/jobs", JOB, bearer)
            posted = time.perf_counter() - started
            assert status == 202, created
            while stack.call("GET", f"/api/jobs/{created['job_id']}")[1]["status"] != "complete":
                if time.perf_counter() - started > COMPLETE_SECONDS_MAX:
                    raise SystemExit(f"job {created['job_id']} not complete within {COMPLETE_SECONDS_MAX} s")
                time.sleep(POLL_SECONDS)
            if run:  # the first pays the cold starts of the jobs and worker functions
                post_times.append(posted)
                complete_times.append(time.perf_counter() - started)
        print(
            f"make run: POST /api/jobs (free path)          p50 {ms(median(post_times))}   max {ms(max(post_times))}   ({RUNS} runs, warm)"
        )
        print(
            f"make run: POST -> complete (free, worker)     p50 {ms(median(complete_times))}   max {ms(max(complete_times))}"
            f"   (goal <= 250 ms p50; GET every {POLL_SECONDS * 1000:.0f} ms)"
        )
    finally:
        stack.stop()


def main() -> None:
    if "--in-process" not in sys.argv[1:]:
        through_make_run()
    dynamodb = DynamoDBLocal().start()
    sqs = LocalSQS(visibility_timeout_seconds=1, name_prefix=f"bench{uuid.uuid4().hex[:6]}-").start()
    try:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb.endpoint_url
        os.environ.update(sqs.environment())
        os.environ["TABLE_NAME"] = table = f"bench-{uuid.uuid4().hex[:8]}"
        dynamodb.create_table(table)
        services = reset_services()
        loader = HandlerLoader(watch=False)
        mappings = {m.queue: replace(m, batching_window_seconds=0) for m in mappings_from(loader)}
        poller = Poller(sqs, loader, mappings=list(mappings.values()))
        api = ApiClient()
        keys = Keys.generate()
        admin = {"authorization": "Bearer bench-admin-key"}
        assert api.put(f"/api/admin/identities/{keys.pubkey}", json_body={"tier": "elite"}, headers=admin).status == 200
        api.post("/api/admin/pool/topup", json_body={"amount_sats": 10_000_000, "note": "bench"}, headers=admin)
        bearer = {"authorization": f"Bearer {services.identity.issue_token(keys.pubkey).token}"}
        usage = services.store.usage  # type: ignore[attr-defined]

        def work() -> None:
            """Deliver the job's one work message (not waiting on a 1 s empty long poll after it)."""
            assert poller.poll_once(mappings["WorkQueue"]) == 1

        post_times: list[float] = []
        calls: dict[str, list[tuple[float, ...]]] = {}
        for _ in range(RUNS):
            before = usage.snapshot()
            started = time.perf_counter()
            created = api.post("/api/jobs", json_body=JOB, headers=bearer)
            post_times.append(time.perf_counter() - started)
            assert created.status == 202, created.body
            work()
            calls.setdefault("free job", []).append(tuple(a - b for a, b in zip(usage.snapshot(), before, strict=True)))
            assert services.jobs.require(created.json["job_id"]).status.value == "complete"

        for _ in range(5):
            before = usage.snapshot()
            created = api.post("/api/jobs", json_body=JOB)
            services.lightning.settle(created.json["invoice"]["payment_hash"], notify=False)  # type: ignore[attr-defined]
            services.invoices.settle(created.json["invoice"]["payment_hash"])
            work()
            calls.setdefault("paid job", []).append(tuple(a - b for a, b in zip(usage.snapshot(), before, strict=True)))
            assert services.jobs.require(created.json["job_id"]).status.value == "complete"

        session_times: dict[str, list[float]] = {}
        for label, headers in (("session request (free)", bearer), ("session request (paid)", None)):
            opened = api.post("/api/sessions", json_body={"amount_sats": 100_000}, headers=headers)
            services.lightning.settle(opened.json["invoice"]["payment_hash"], notify=False)  # type: ignore[attr-defined]
            services.invoices.settle(opened.json["invoice"]["payment_hash"])
            token = {"x-session-token": opened.json["session_token"]}
            for _ in range(RUNS):
                before = usage.snapshot()
                started = time.perf_counter()
                answer = api.post(f"/api/sessions/{opened.json['session_id']}/request", json_body=JOB, headers=token)
                session_times.setdefault(label, []).append(time.perf_counter() - started)
                assert answer.status == 200, answer.body
                calls.setdefault(label, []).append(tuple(a - b for a, b in zip(usage.snapshot(), before, strict=True)))

        print(f"\nin process: POST /api/jobs (free path)   p50 {ms(median(post_times))}   max {ms(max(post_times))}   ({RUNS} runs)")
        for label, times in session_times.items():
            print(f"{label:<35} p50 {ms(median(times))}   max {ms(max(times))}")
        print("\nDynamoDB per operation (median): calls, write capacity, read capacity (DynamoDB Local's figures)")
        for label, rows in calls.items():
            c, w, r = (median(x[i] for x in rows) for i in range(3))
            print(f"  {label:<28} {c:5.0f} calls ({MINIMUM_CALLS[label]} at least)   {w:6.1f} WCU   {r:6.1f} RCU")

        pricing = services.pricing
        ratios = []
        for line in (ROOT / "bench" / "prompts.jsonl").read_text().splitlines():
            prompt = json.loads(line)
            estimate = pricing.estimate_request_cost(prompt["prompt"], "gpt-4o-mini", 1024)
            charged = pricing.actual_charge_sats(TokenUsage(prompt["o200k_base_tokens"], 1024), "gpt-4o-mini", estimate)
            ratios.append(estimate.sats / max(charged, 1))
        print(
            f"\nquoted / charged sats, gpt-4o-mini, output at its cap: median {median(ratios):.2f}x, max {max(ratios):.2f}x (goal <= 1.25x)"
        )
    finally:
        sqs.stop()
        dynamodb.stop()


if __name__ == "__main__":
    main()
