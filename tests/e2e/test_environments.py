"""Execution environments over HTTP: every invocation in its own process, one event at a time, so
concurrent callers never see each other's event; the function's Timeout kills an environment, the
client gets the error shape and the next request is served; a killed queue message comes back."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from local.environments import WATCH_INTERVAL_SECONDS, ExecutionEnvironments
from local.gateway import Gateway
from local.handlers import function_specs
from local.poller import Poller, mappings_from
from local.sqs import LocalSQS
from tests.e2e.conftest import Answer, Stack
from timmy.identity.signer import Keys

ADMIN = {"authorization": f"Bearer {os.environ.get('ADMIN_API_KEY', 'test-admin-key')}", "content-type": "application/json"}


@dataclasses.dataclass
class EnvStack(Stack):
    environments: ExecutionEnvironments
    delay_file: Path


@pytest.fixture
def env_stack(table_name: str, local_sqs: LocalSQS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EnvStack]:
    for name, value in local_sqs.environment().items():
        monkeypatch.setenv(name, value)
    for name in ("ADMIN_API_KEY_SECRET_NAME", "TOKEN_SECRET_NAME", "LIGHTNING_API_KEY_SECRET_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LIGHTNING_BACKEND", "simulated")
    monkeypatch.setenv("PRICE_SOURCE", "fixed")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    delay_file = tmp_path / "delay"
    monkeypatch.setenv("TIMMY_LOCAL_DELAY_FILE", str(delay_file))
    # Short timeouts for the two functions the timeout tests hold, so a test outlasts one in seconds;
    # 5 s, not 3: on a loaded machine a first GET /api/pool (clients made, the pool seeded) took over 3 s.
    short = {"EstimateFunction", "WorkerFunction"}
    specs = {k: dataclasses.replace(s, timeout_seconds=5) if k in short else s for k, s in function_specs().items()}
    environments = ExecutionEnvironments(specs, watch=False, concurrency=4, throttle_seconds=60)
    gateway = Gateway(0, environments).start()
    monkeypatch.setenv("PUBLIC_BASE_URL", gateway.url)  # read by each environment when it starts
    try:
        yield EnvStack(gateway, environments, local_sqs, environments, delay_file)  # type: ignore[arg-type]
    finally:
        gateway.stop()
        environments.stop()


def topup(stack: Stack, key: str, amount: int) -> Answer:
    body = json.dumps({"amount_sats": amount, "note": key})
    while True:
        answer = stack.request("POST", "/api/admin/pool/topup", body, {**ADMIN, "idempotency-key": key})
        if not (answer.status == 409 and answer.json()["error"]["code"] == "request_in_progress"):
            return answer
        time.sleep(0.05)  # the first call with this key is still running: retry, as a client would


def test_64_concurrent_topups_with_distinct_keys_book_64_transfers(env_stack: EnvStack) -> None:
    before = env_stack.request("GET", "/api/pool").json()["balance_sats"]
    amounts = {f"k{i}-{uuid.uuid4().hex[:6]}": i + 1 for i in range(64)}
    with ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(lambda item: topup(env_stack, *item), amounts.items()))
    assert [a.status for a in answers] == [200] * 64, [a.body for a in answers if a.status != 200]
    bodies = [a.json() for a in answers]
    assert len({b["transfer_id"] for b in bodies}) == 64
    assert [b["amount_sats"] for b in bodies] == list(amounts.values())
    after = env_stack.request("GET", "/api/pool").json()["balance_sats"]
    assert after - before == sum(amounts.values())
    assert 1 <= env_stack.environments.pools["AdminFunction"].cold_starts <= 4  # the cap


def test_64_concurrent_topups_with_8_shared_keys_book_8_and_repeat_the_first_answer(env_stack: EnvStack) -> None:
    before = env_stack.request("GET", "/api/pool").json()["balance_sats"]
    keys = [f"shared-{i}-{uuid.uuid4().hex[:6]}" for i in range(8)]
    calls = [(keys[i % 8], 100 + i % 8) for i in range(64)]
    with ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(lambda call: topup(env_stack, *call), calls))
    assert all(a.status == 200 for a in answers), [a.body for a in answers if a.status != 200]
    by_key: dict[str, set[bytes]] = {}
    for (key, _), answer in zip(calls, answers, strict=True):
        by_key.setdefault(key, set()).add(json.dumps(answer.json()["transfer_id"]).encode())
    assert all(len(ids) == 1 for ids in by_key.values()), by_key
    assert len({next(iter(ids)) for ids in by_key.values()}) == 8
    after = env_stack.request("GET", "/api/pool").json()["balance_sats"]
    assert after - before == sum(100 + i for i in range(8))


def test_32_concurrent_sign_ins_each_get_their_own_pubkey(env_stack: EnvStack) -> None:
    signers = [Keys.generate() for _ in range(32)]
    url = f"{env_stack.gateway.url}/api/identity/token"

    def sign_in(keys: Keys) -> Answer:
        return env_stack.request("POST", "/api/identity/token", headers={"authorization": keys.nip98_header(url, "POST")})

    with ThreadPoolExecutor(16) as threads:
        answers = list(threads.map(sign_in, signers))
    assert [a.status for a in answers] == [200] * 32, [a.body for a in answers if a.status != 200]
    assert [a.json()["pubkey"] for a in answers] == [k.pubkey for k in signers]


def test_a_handler_past_its_timeout_is_killed_and_the_next_request_is_served(env_stack: EnvStack) -> None:
    assert env_stack.request("GET", "/api/pool").status == 200
    pool = env_stack.environments.pools["EstimateFunction"]
    (warm,) = pool.pids
    env_stack.delay_file.write_text("30")
    started = time.monotonic()
    answer = env_stack.request("GET", "/api/pool")
    assert time.monotonic() - started < 10
    assert answer.status == 504 and answer.json()["error"]["code"] == "integration_timeout"
    assert not Path(f"/proc/{warm}").exists()  # killed and reaped
    env_stack.delay_file.unlink()
    assert env_stack.request("GET", "/api/pool").status == 200
    assert pool.pids and warm not in pool.pids and pool.cold_starts == 2


def test_a_queue_message_whose_handler_was_killed_is_redelivered(env_stack: EnvStack) -> None:
    mapping = next(m for m in mappings_from(env_stack.environments) if m.function == "WorkerFunction")
    client = env_stack.sqs.client()
    received: list[Any] = []

    def invoke(function: str, event: dict[str, Any]) -> Any:
        received.extend(r["messageId"] for r in event["Records"])
        return env_stack.environments.invoke(function, event)

    poller = Poller(env_stack.sqs, env_stack.environments, invoke=invoke, mappings=[mapping])
    client.send_message(QueueUrl=env_stack.sqs.queue_urls[mapping.queue], MessageBody=json.dumps({"job_id": "none"}))
    env_stack.delay_file.write_text("30")
    assert poller.poll_once(mapping, client) == 1  # killed past the timeout: nothing deleted
    env_stack.delay_file.unlink()
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        poller.poll_once(mapping, client)
    assert len(received) >= 2 and received[0] == received[1]  # the same message, delivered again


def test_a_code_change_retires_the_warm_environments(tmp_path: Path) -> None:
    code = tmp_path / "app.py"
    code.write_text("import os\ndef handler(event, context):\n    return {'version': 'v1', 'pid': os.getpid()}\n")
    spec = dataclasses.replace(next(iter(function_specs().values())), logical_id="EchoFunction", file=code, attribute="handler")
    environments = ExecutionEnvironments({"EchoFunction": spec}, watch=False, concurrency=1)
    try:
        first = environments.invoke("EchoFunction", {})
        assert environments.invoke("EchoFunction", {})["pid"] == first["pid"]  # warm
        code.write_text(code.read_text().replace("v1", "v2"))
        environments.reload()  # what the watcher thread does when a .py under functions/ or shared/ changes
        second = environments.invoke("EchoFunction", {})
        assert second["version"] == "v2" and second["pid"] != first["pid"]
        assert not Path(f"/proc/{first['pid']}").exists()
    finally:
        environments.stop()


def test_the_watcher_notices_an_edit_and_the_next_event_cold_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No explicit reload: the watcher thread's scan (every WATCH_INTERVAL_SECONDS, off the request
    path) sees the edit, retires the warm environment, and the next event imports the new code."""
    monkeypatch.setattr("local.handlers.WATCHED_DIRS", (tmp_path,))
    code = tmp_path / "app.py"
    code.write_text("import os\ndef handler(event, context):\n    return {'version': 'v1', 'pid': os.getpid()}\n")
    spec = dataclasses.replace(next(iter(function_specs().values())), logical_id="EchoFunction", file=code, attribute="handler")
    environments = ExecutionEnvironments({"EchoFunction": spec}, watch=True, concurrency=1)
    try:
        first = environments.invoke("EchoFunction", {})
        assert environments.invoke("EchoFunction", {})["pid"] == first["pid"] and environments.reloads == 0  # warm
        code.write_text(code.read_text().replace("v1", "v2"))
        stat = code.stat()
        os.utime(code, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a coarse-mtime filesystem sees it too
        deadline = time.monotonic() + 10 * WATCH_INTERVAL_SECONDS
        while environments.reloads == 0 and time.monotonic() < deadline:
            time.sleep(WATCH_INTERVAL_SECONDS / 5)  # the watcher runs on its own clock: poll its counter
        assert environments.reloads == 1
        assert environments.pools["EchoFunction"].pids == []  # the idle environment was retired at once
        assert not Path(f"/proc/{first['pid']}").exists()
        second = environments.invoke("EchoFunction", {})
        assert second["version"] == "v2" and second["pid"] != first["pid"]
        assert environments.pools["EchoFunction"].cold_starts == 2
    finally:
        environments.stop()


THROTTLE_SECONDS = 1.5
HOLD_HANDLER = """import os, time
def handler(event, context):
    time.sleep(float((event.get("queryStringParameters") or {}).get("seconds", "0")))
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": '{"pid": %d}' % os.getpid()}
"""


@pytest.fixture
def capped_gateway(tmp_path: Path) -> Iterator[tuple[Gateway, ExecutionEnvironments]]:
    """One function capped at one environment by ReservedConcurrentExecutions (the default cap is 4),
    with a throttle wait of THROTTLE_SECONDS."""
    code = tmp_path / "app.py"
    code.write_text(HOLD_HANDLER)
    spec = dataclasses.replace(
        next(iter(function_specs().values())),
        logical_id="HoldFunction",
        file=code,
        attribute="handler",
        timeout_seconds=30,
        reserved_concurrency=1,
        events={"Hold": {"Type": "HttpApi", "Properties": {"Path": "/hold", "Method": "GET"}}},
    )
    environments = ExecutionEnvironments({"HoldFunction": spec}, watch=False, concurrency=4, throttle_seconds=THROTTLE_SECONDS)
    gateway = Gateway(0, environments).start()
    try:
        yield gateway, environments
    finally:
        gateway.stop()
        environments.stop()


def test_an_event_that_finds_every_environment_busy_waits_then_is_throttled(capped_gateway: tuple[Gateway, ExecutionEnvironments]) -> None:
    gateway, environments = capped_gateway
    stack = Stack(gateway, environments, None)  # type: ignore[arg-type]
    pool = environments.pools["HoldFunction"]
    assert pool.cap == 1
    assert stack.request("GET", "/hold").status == 200  # the cold start, out of the way

    def busy_for(seconds: float) -> Any:
        threads = ThreadPoolExecutor(1)
        held = threads.submit(stack.request, "GET", f"/hold?seconds={seconds}")
        deadline = time.monotonic() + 5
        while pool.idle and time.monotonic() < deadline:  # until the one environment is checked out
            time.sleep(0.01)
        assert not pool.idle
        threads.shutdown(wait=False)
        return held

    # Busy for less than the wait: the event waits for the environment and is served by it.
    held = busy_for(0.5)
    started = time.monotonic()
    served = stack.request("GET", "/hold")
    assert served.status == 200 and 0.2 < time.monotonic() - started < THROTTLE_SECONDS
    assert held.result().status == 200

    # Busy for longer than the wait: after the bound, API Gateway's throttle answer in the error shape.
    held = busy_for(THROTTLE_SECONDS + 3)
    started = time.monotonic()
    throttled = stack.request("GET", "/hold")
    waited = time.monotonic() - started
    assert throttled.status == 429, throttled.body
    assert throttled.headers["content-type"] == "application/json"
    assert throttled.json() == {
        "error": {"code": "too_many_requests", "message": "HoldFunction is at its concurrency limit; retry shortly"}
    }
    assert THROTTLE_SECONDS - 0.05 <= waited < THROTTLE_SECONDS + 1.5  # it waited the bound, not for the busy one
    assert held.result().status == 200  # the busy event was not disturbed
    assert stack.request("GET", "/hold").status == 200  # free again: served
    assert pool.cold_starts == 1  # never more environments than the cap


def test_24_identities_with_6_concurrent_jobs_each_while_the_pool_runs_dry(env_stack: EnvStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: 144 jobs over HTTP at once, the pool (1,000 sats) running dry among them; every
    invoice paid; after the queues drain and the sweeper function runs, no job is left unfinished
    and the ledger audit is clean."""
    # Read by each environment when it starts (none has yet): a small pool, and the sweeper failing
    # any job still executing after 1 s (a worker killed past its short timeout here sends its
    # message to the DLQ after the redeliveries; in AWS the sweeper fails such a job after 25 min)
    # once its work lease lapsed: the lease outlives the worker's Timeout by 1 s here (120 s for a
    # 60 s Timeout in AWS), so the killed worker's lease has lapsed before the sweeper runs below.
    worker_timeout_seconds = env_stack.environments.specs["WorkerFunction"].timeout_seconds
    work_lease_seconds = worker_timeout_seconds + 1
    monkeypatch.setenv("POOL_SEED_SATS", "1000")
    monkeypatch.setenv("JOB_STUCK_SECONDS", "1")
    monkeypatch.setenv("WORK_LEASE_SECONDS", str(work_lease_seconds))
    from timmy_http.services import reset_services

    identity = reset_services().identity
    signers = [Keys.generate() for _ in range(24)]
    tiers = ["elite" if index % 2 else "trusted" for index in range(24)]
    for keys, tier in zip(signers, tiers, strict=True):
        assert env_stack.request("PUT", f"/api/admin/identities/{keys.pubkey}", json.dumps({"tier": tier}), ADMIN).status == 200
    tokens = [identity.issue_token(keys.pubkey).token for keys in signers]
    body = json.dumps({"request": "Write a haiku about the sea", "model": "claude-sonnet-4-5", "max_output_tokens": 4000})

    def create(token: str) -> Answer:
        return env_stack.request("POST", "/api/jobs", body, {"authorization": f"Bearer {token}", "content-type": "application/json"})

    poller = Poller(env_stack.sqs, env_stack.environments).start()
    try:
        with ThreadPoolExecutor(16) as threads:
            created = list(threads.map(create, [t for t in tokens for _ in range(6)]))
            assert sorted({a.status for a in created}) <= [201, 202], [a.body for a in created if a.status not in (201, 202)]
            invoices = [a.json()["invoice"]["bolt11"] for a in created if a.status == 201]
            paid = list(threads.map(lambda b: env_stack.request("POST", "/dev/lightning/pay", json.dumps({"bolt11": b}), ADMIN), invoices))
        assert all(p.status == 200 for p in paid), [p.body for p in paid if p.status != 200]
        # The pool ran dry in the middle: an elite identity's budget covers all six of its jobs, so an
        # elite job that was not free was refused by the pool, not by the budget.
        quoted = {a.json()["receipt"]["quoted_sats"] for a in created}
        assert max(quoted) * 6 <= 1_000, quoted  # FREE_TIER_BUDGET_ELITE's default
        elite = [a for index, a in enumerate(created) if tiers[index // 6] == "elite"]
        assert any(a.status == 202 for a in elite) and any(a.status == 201 for a in elite), "the pool should run dry among the elite jobs"
        job_ids = [a.json()["job_id"] for a in created]
        deadline = time.monotonic() + 120
        statuses: dict[str, str] = {}
        topups: set[str] = set()
        while time.monotonic() < deadline:
            jobs = {j: env_stack.request("GET", f"/api/jobs/{j}").json() for j in job_ids}
            statuses = {j: job["status"] for j, job in jobs.items()}
            if all(s in ("complete", "failed") for s in statuses.values()):
                break
            for j, job in jobs.items():  # a partial job the dry pool could no longer cover asks for the rest
                if job["status"] == "awaiting_topup" and j not in topups:
                    pay = env_stack.request("POST", "/dev/lightning/pay", json.dumps({"bolt11": job["invoice"]["bolt11"]}), ADMIN)
                    assert pay.status == 200, pay.body
                    topups.add(j)
            time.sleep(0.5)
    finally:
        poller.stop()
    # Past JOB_STUCK_SECONDS for any job still executing, and past the lease its last worker took
    # (the pollers have stopped: no delivery claims a job from here on).
    time.sleep(1.1 if "executing" not in statuses.values() else work_lease_seconds + 0.1)
    from local.run import scheduled_event

    report = env_stack.environments.invoke("SweeperFunction", scheduled_event())  # the scheduled sweeper, in its environment
    assert report["jobs_failed"] <= list(statuses.values()).count("executing"), (report, statuses)
    statuses = {j: env_stack.request("GET", f"/api/jobs/{j}").json()["status"] for j in job_ids}
    assert set(statuses.values()) <= {"complete", "failed"}, {s: list(statuses.values()).count(s) for s in set(statuses.values())}
    assert list(statuses.values()).count("complete") >= len(job_ids) - 8, statuses
    audit = env_stack.request("GET", "/api/admin/audit", headers=ADMIN).json()
    assert audit["ok"], audit
