"""`make run`: the whole stack on one machine, no AWS account and no Docker (contract section 7).

DynamoDB Local (persisted under TIMMY_DATA_DIR), the table of template.yaml, moto's SQS with the
template's queues, the HTTP gateway on PORT, the queue poller and the sweeper on a timer. Ctrl-C or
SIGTERM stops all of it, java included.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
import warnings
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from local.template import ROOT, load_template, resources

DEFAULT_PORT = 3000
DEFAULT_DATA_DIR = ROOT / ".local"
LOCAL_DEFAULTS = {
    "ADMIN_API_KEY": "local-admin-key",
    "PRICE_SOURCE": "fixed",
    "LIGHTNING_BACKEND": "simulated",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_SERVICE_NAME": "timmy",
    "POWERTOOLS_METRICS_NAMESPACE": "Timmy",
    "TABLE_NAME": "timmy",
}
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def local_environment(data_dir: Path, environ: MutableMapping[str, str] = os.environ) -> None:
    """Fill in the local defaults; anything already set (every configuration variable) wins."""
    for name, value in LOCAL_DEFAULTS.items():
        environ.setdefault(name, value)
    environ.setdefault("TIMMY_DATA_DIR", str(data_dir))  # the simulated Lightning node keeps its state there
    if not environ.get("TOKEN_SECRET"):
        environ["TOKEN_SECRET"] = _token_secret(data_dir)
    # Locally the secrets are plain values: never look them up in Secrets Manager.
    for name in ("ADMIN_API_KEY_SECRET_NAME", "TOKEN_SECRET_NAME", "LIGHTNING_API_KEY_SECRET_NAME"):
        environ.pop(name, None)


def _token_secret(data_dir: Path) -> str:
    """Generated once per data dir, so tokens survive a restart (and a fresh dir starts fresh)."""
    path = data_dir / "token-secret"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return value


def sweep_interval_seconds() -> float:
    """SWEEP_INTERVAL_SECONDS, else the sweeper's `rate(...)` schedule in template.yaml, else 60."""
    if os.environ.get("SWEEP_INTERVAL_SECONDS"):
        return float(os.environ["SWEEP_INTERVAL_SECONDS"])
    function = resources("AWS::Serverless::Function").get("SweeperFunction") or {}
    for event in ((function.get("Properties") or {}).get("Events") or {}).values():
        found = _RATE.fullmatch(str((event.get("Properties") or {}).get("ScheduleExpression", "")))
        if found:
            return float(int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")])
    return 60.0


def scheduled_event() -> dict[str, Any]:
    """What EventBridge hands a scheduled function."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return {
        "version": "0",
        "id": secrets.token_hex(16),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": now,
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/timmy-sweeper"],
        "detail": {},
    }


class Sweeper:
    """Calls the sweeper function every `interval` seconds, if its code exists (the lead's issue)."""

    def __init__(self, loader: Any, interval_seconds: float, function: str = "SweeperFunction"):
        self.loader, self.interval_seconds, self.function = loader, interval_seconds, function
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            spec = self.loader.specs.get(self.function)
            if spec is None or not spec.exists:
                continue
            try:
                self.loader.invoke(self.function, scheduled_event())
            except Exception:
                logging.getLogger("timmy.local").exception("the sweeper failed; it runs again in %s s", self.interval_seconds)


def banner(url: str, data_dir: Path) -> str:
    return f"""
  Timmy is running at {url}
    docs     {url}/api/docs   (OpenAPI: {url}/api/openapi.json)
    data     {data_dir}  (delete it for a fresh ledger)
    admin    Authorization: Bearer {os.environ.get("ADMIN_API_KEY", "")}

  Try:  curl -s {url}/api/health
        curl -s "{url}/api/estimate?request=hello&model=timmy-local"

  Each function runs in its own processes, one event at a time, as in Lambda; code changes under
  functions/ and shared/ retire the warm ones (the next request is a cold start). Ctrl-C stops everything.
"""


def main() -> int:
    port = int(os.environ.get("PORT") or DEFAULT_PORT)
    data_dir = Path(os.environ.get("TIMMY_DATA_DIR") or DEFAULT_DATA_DIR).resolve()
    local_environment(data_dir)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())

    from local.dynamodb import DynamoDBLocal
    from local.environments import ExecutionEnvironments, choose_python
    from local.gateway import Gateway
    from local.poller import Poller
    from local.sqs import LocalSQS

    started: list[Any] = []  # stopped in reverse order, whatever happens
    try:
        dynamodb = DynamoDBLocal(data_dir=data_dir / "dynamodb")
        started.append(dynamodb)
        dynamodb.start()
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb.endpoint_url
        dynamodb.create_table(os.environ["TABLE_NAME"])
        sqs = LocalSQS()
        started.append(sqs)
        sqs.start().export()
        python, runtime_note = choose_python()
        print(f"  {runtime_note}", flush=True)
        loader = ExecutionEnvironments(python=python)
        started.append(loader)
        cors = ((resources("AWS::Serverless::HttpApi").get("TimmyApi") or {}).get("Properties") or {}).get("CorsConfiguration")
        gateway = Gateway(port, loader, cors=cors)
        started.append(gateway.start())
        started.append(Poller(sqs, loader).start())
        started.append(Sweeper(loader, sweep_interval_seconds()).start())
        print(banner(gateway.url, data_dir), flush=True)
        while not stopping.wait(0.5):
            pass
        print("\n  stopping...", flush=True)
    except Exception as error:
        print(f"timmy local stack failed to start: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        for part in reversed(started):
            try:
                part.stop()
            except Exception as error:  # keep stopping the others (java above all)
                print(f"  could not stop {type(part).__name__}: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    load_template()  # fail fast on a template that does not parse
    sys.exit(main())
