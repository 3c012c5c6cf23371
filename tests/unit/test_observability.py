"""The metrics of a request that adds none: nothing published and nothing said (Powertools would
warn on each such invocation, in every function's log stream)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_request_without_metrics_publishes_none_and_warns_nothing() -> None:
    code = (
        "from timmy_http.observability import metrics\n"
        "handler = metrics.log_metrics(lambda event, context: 'answered')\n"
        "print(handler({}, None))\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],  # any warning left would fail the call
        env={"PYTHONPATH": str(ROOT / "shared"), "POWERTOOLS_TRACE_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    assert done.stdout.strip() == "answered"
