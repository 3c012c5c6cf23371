"""From payment to booked on the local stack: webhook → settlement queue → settlement function → ledger.

Part 1 runs the real local stack, `python -m local.run` (what `make run` runs) on a free port with a
fresh TIMMY_DATA_DIR and the simulated Lightning backend. For each of BENCH_DONATIONS donations:
POST /api/pool/donations (untimed), then POST /dev/lightning/pay (the simulated node settles the
invoice and fires its webhook, asynchronously as a real backend does), then GET /api/pool until the
pool shows the amount. Two clocks: "seen" is the client's (pay sent → the pool shows it, polled
every POLL_SECONDS), "booked" is the settlement function's own log line for that payment hash
(pay sent → its `invoice notification settled`). The first donation pays the cold starts and is
shown apart. Then a burst: BENCH_DONATIONS invoices paid at once from 8 threads.

Part 2 counts what one booking costs in DynamoDB, in process (the settlement's code, not its
process: an environment's store counters are out of reach): the same `Invoices.settle` the
settlement function calls, on DynamoDB Local, round trips and consumed capacity from the store's
own counters (as bench/ledger.py), plus AWS's arithmetic for the transaction's items.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "shared")]
for name, value in {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(name, value)

DONATIONS = int(os.environ.get("BENCH_DONATIONS", "30"))
POLL_SECONDS = 0.005
READY_SECONDS = 120
BOOKED_SECONDS = 60
SETTLED = re.compile(r'"message":\s*"invoice notification settled"')
ADMIN = {"authorization": "Bearer local-admin-key"}  # make run's default admin key
KB = 1024


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def summary(samples_ms: list[float]) -> str:
    return (
        f"p50 {percentile(samples_ms, 50):7.1f} ms  p99 {percentile(samples_ms, 99):7.1f} ms"
        f"  min {min(samples_ms):6.1f}  max {max(samples_ms):7.1f}  mean {statistics.fmean(samples_ms):7.1f}"
    )


class LocalRun:
    """`python -m local.run` on a free port; its console read line by line for the settlement's log."""

    def __init__(self) -> None:
        from local.dynamodb import free_port

        self.port = free_port()
        self.data_dir = Path(tempfile.mkdtemp(prefix="timmy-bench-settlement-"))
        env = {**os.environ, "PORT": str(self.port), "TIMMY_DATA_DIR": str(self.data_dir), "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}"}
        for name in ("TABLE_NAME", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "SETTLEMENT_QUEUE_URL", "WORK_QUEUE_URL"):
            env.pop(name, None)
        env.update({"LIGHTNING_BACKEND": "simulated", "POWERTOOLS_LOG_LEVEL": "INFO", "ADMIN_API_KEY": "local-admin-key"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.run"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.booked_at: dict[str, float] = {}  # payment hash -> epoch seconds of the settlement's log line
        self.booked = threading.Condition()
        self.tail: list[str] = []
        threading.Thread(target=self._read, name="local-run-console", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode(errors="replace")
            self.tail = [*self.tail[-40:], line]
            if not SETTLED.search(line):
                continue
            try:
                record = json.loads(line)
                at = datetime.strptime(record["timestamp"], "%Y-%m-%d %H:%M:%S,%f%z").timestamp()
            except (ValueError, KeyError):
                continue
            with self.booked:
                self.booked_at.setdefault(record.get("payment_hash", ""), at)
                self.booked.notify_all()

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers={"content-type": "application/json", **(headers or {})})
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit("local.run exited:\n" + "".join(self.tail))
            try:
                if self.call("GET", "/api/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"local.run was not healthy within {READY_SECONDS} s:\n" + "".join(self.tail))

    def wait_booked(self, payment_hash: str) -> float:
        with self.booked:
            if not self.booked.wait_for(lambda: payment_hash in self.booked_at, timeout=BOOKED_SECONDS):
                raise SystemExit(f"no settlement log for {payment_hash} within {BOOKED_SECONDS} s:\n" + "".join(self.tail))
            return self.booked_at[payment_hash]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def donate(stack: LocalRun, amount: int) -> dict[str, Any]:
    status, donation = stack.call("POST", "/api/pool/donations", {"amount_sats": amount})
    if status != 201:
        raise SystemExit(f"POST /api/pool/donations answered {status}: {donation}")
    invoice: dict[str, Any] = donation["invoice"]
    return invoice


def pay(stack: LocalRun, invoice: dict[str, Any]) -> float:
    """Pay the invoice; the epoch second the pay request was sent."""
    sent = time.time()
    status, paid = stack.call("POST", "/dev/lightning/pay", {"bolt11": invoice["bolt11"]})
    if status != 200 or paid.get("status") != "paid":
        raise SystemExit(f"POST /dev/lightning/pay answered {status}: {paid}")
    return sent


def pool_balance(stack: LocalRun) -> int:
    return int(stack.call("GET", "/api/pool")[1]["balance_sats"])


def end_to_end() -> None:
    stack = LocalRun()
    try:
        stack.wait_ready()
        seen_ms: list[float] = []
        booked_ms: list[float] = []
        pay_ms: list[float] = []
        for index in range(DONATIONS + 1):
            amount = 100 + index
            invoice = donate(stack, amount)
            before = pool_balance(stack)
            sent = pay(stack, invoice)
            answered = time.time()
            while pool_balance(stack) < before + amount:
                if time.time() - sent > BOOKED_SECONDS:
                    raise SystemExit(f"the pool did not show donation {index} within {BOOKED_SECONDS} s:\n" + "".join(stack.tail))
                time.sleep(POLL_SECONDS)
            seen = time.time()
            booked = stack.wait_booked(invoice["payment_hash"])
            if pool_balance(stack) != before + amount:
                raise SystemExit("the pool grew by more than the donation")
            if index == 0:
                print(
                    f"first donation (cold starts of the dev, webhook and settlement functions): booked {(booked - sent) * 1000:.0f} ms,"
                    f" seen {(seen - sent) * 1000:.0f} ms after the pay request"
                )
                continue
            pay_ms.append((answered - sent) * 1000)
            booked_ms.append((booked - sent) * 1000)
            seen_ms.append((seen - sent) * 1000)
        print(f"{DONATIONS} donations one after another, warm (simulated node, webhook → settlement queue → settlement → ledger):")
        print(f"  pay request answered      {summary(pay_ms)}")
        print(f"  payment → booked (log)    {summary(booked_ms)}")
        print(f"  payment → seen in the pool {summary(seen_ms)}  (GET /api/pool every {POLL_SECONDS * 1000:.0f} ms)")

        for burst in ("first burst (more environments cold-start)", "second burst (warm)"):
            invoices = [donate(stack, 1000 + i) for i in range(DONATIONS)]
            before = pool_balance(stack)
            started = time.time()
            with ThreadPoolExecutor(8) as threads:
                sent_at = list(threads.map(lambda invoice: pay(stack, invoice), invoices))
            burst_ms = [(stack.wait_booked(i["payment_hash"]) - sent) * 1000 for i, sent in zip(invoices, sent_at, strict=True)]
            drained = max(stack.booked_at[i["payment_hash"]] for i in invoices) - started
            grown = pool_balance(stack) - before
            if grown != sum(1000 + i for i in range(DONATIONS)):
                raise SystemExit(f"the burst grew the pool by {grown}")
            print(
                f"{DONATIONS} donations paid at once from 8 threads, {burst}: the last booked {drained * 1000:.0f} ms after the first pay"
            )
            print(f"  payment → booked (log)    {summary(burst_ms)}")
        status, audit = stack.call("GET", "/api/admin/audit", headers=ADMIN)
        print(f"  ledger audit after both runs: {'ok' if status == 200 and audit.get('ok') else audit}")
    finally:
        stack.stop()


def dynamodb_per_booking() -> None:
    """The settlement's DynamoDB work for one booking (and for a repeated notification), in process."""
    from ledger import item_size_bytes  # bench/ledger.py, beside this file

    from local.dynamodb import DynamoDBLocal
    from timmy.payments.invoices import SettleOutcome
    from timmy_http.services import reset_services

    server = DynamoDBLocal().start()
    data_dir = tempfile.mkdtemp(prefix="timmy-bench-settlement-db-")
    try:
        table = f"timmy-bench-{uuid.uuid4().hex[:8]}"
        server.create_table(table)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL_DYNAMODB": server.endpoint_url,
                "TABLE_NAME": table,
                "LIGHTNING_BACKEND": "simulated",
                "TIMMY_DATA_DIR": data_dir,
                "TOKEN_SECRET": "bench-token-secret",
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                "PRICE_SOURCE": "fixed",
            }
        )
        services = reset_services()
        store: Any = services.store
        written: list[int] = [0, 0]  # items in transactions, GSI writes

        original = store.transact

        def counted(actions: list[dict[str, Any]]) -> None:
            original(actions)
            written[0] += len(actions)
            for action in actions:
                body = next(iter(action.values()))
                if "gsi1pk" in str(body):  # a put with the index key, or an update that sets or removes it
                    written[1] += 1

        store.transact = counted
        count = DONATIONS
        hashes = []
        for index in range(count + 3):
            donation = services.donations.create(200 + index, None, "http://127.0.0.1:9")
            services.lightning.settle(donation.invoice.payment_hash, notify=False)  # paid at the node, no webhook
            hashes.append(donation.invoice.payment_hash)
        for payment_hash in hashes[:3]:  # warm-up: the JVM and the first client calls
            services.invoices.settle(payment_hash)
        rows = []
        for what, expected in (("booking", SettleOutcome.BOOKED), ("repeat", SettleOutcome.ALREADY_BOOKED)):
            calls0, wcu0, rcu0 = store.usage.snapshot()
            items0, gsi0 = written
            for payment_hash in hashes[3:]:
                outcome = services.invoices.settle(payment_hash)
                if outcome is not expected:
                    raise SystemExit(f"settle answered {outcome}, not {expected}")
            calls1, wcu1, rcu1 = store.usage.snapshot()
            rows.append(
                (what, (calls1 - calls0) / count, (wcu1 - wcu0) / count, (rcu1 - rcu0) / count, written[0] - items0, written[1] - gsi0)
            )
        largest = max(item_size_bytes(item) for item in store.scan())
        per_item = 2 * -(-largest // KB)  # a transactional write: 2 WCU per KB, per item
        print(f"DynamoDB per settlement (in process on DynamoDB Local, {count} donations; Invoices.settle, as the settlement calls it):")
        for what, calls, wcu, rcu, items, gsi in rows:
            aws = (items * per_item + gsi * -(-largest // KB)) / count
            print(
                f"  {what:<8} {calls:4.1f} round trips  WCU {wcu:4.1f} (DynamoDB Local)  {aws:4.1f} (AWS: {items / count:.1f} items"
                f" × {per_item} transactional + {gsi / count:.1f} GSI)  RCU {rcu:4.1f}"
            )
        print(f"  largest item {largest} B; repeat: the same notification again (a twin webhook, a redelivery)")
    finally:
        server.stop()


def main() -> None:
    end_to_end()
    dynamodb_per_booking()


if __name__ == "__main__":
    main()
