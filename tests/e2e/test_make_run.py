"""`python -m local.run` (what `make run` runs): ready on a free port with a fresh data dir, a restart
keeps the state and is ready in under 15 s, and SIGINT / SIGTERM leave no process behind (java included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path

import pytest

from local.dynamodb import free_port
from local.template import ROOT

pytestmark = pytest.mark.slow
READY_SECONDS_MAX = 15


def processes_mentioning(marker: str) -> list[str]:
    """Command lines of live processes that name `marker` (the temp data dir is in java's -dbPath)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((line for line in (entry / "status").read_text().splitlines() if line.startswith("State:")), "")
        except OSError:
            continue
        if marker in cmdline and "zombie" not in state:
            found.append(f"{entry.name}: {cmdline}")
    return found


def start(port: int, data_dir: Path, configuration: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """`python -m local.run` as `make run` starts it, with `configuration` (environment variables, as
    an operator sets them) on top of this process's environment."""
    env = {**os.environ, "PORT": str(port), "TIMMY_DATA_DIR": str(data_dir), "PYTHONPATH": f"{ROOT}:{ROOT / 'shared'}"}
    for name in (
        "TABLE_NAME",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_SQS",
        "SETTLEMENT_QUEUE_URL",
        "WORK_QUEUE_URL",
        "ADMIN_API_KEY",
        "TOKEN_SECRET",
    ):
        env.pop(name, None)
    env.update(configuration or {})
    return subprocess.Popen(
        [sys.executable, "-m", "local.run"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_healthy(port: int, process: subprocess.Popen[bytes], seconds: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if process.poll() is not None:
            raise AssertionError(f"local.run exited with {process.returncode}: {process.stdout.read().decode() if process.stdout else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no healthy answer on port {port} within {seconds} s")


def stop(process: subprocess.Popen[bytes], signum: int) -> str:
    process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise AssertionError(f"local.run did not stop on {signal.Signals(signum).name}") from None
    return output.decode(errors="replace")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_run_starts_restarts_and_stops_cleanly(signum: int, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    process = start(port, data_dir)
    try:
        wait_healthy(port, process, 90)
        secret = (data_dir / "token-secret").read_text()
        # The health check ran in an execution environment: its own process, owned by local.run.
        environments = processes_mentioning(f"--owner={process.pid}")
        assert environments and all("local.environment" in e for e in environments), environments
    finally:
        output = stop(process, signum)
    assert process.returncode == 0, output
    assert f"http://127.0.0.1:{port}" in output and "/api/docs" in output
    assert "environments run on" in output  # which Python runs the functions, said at start-up
    assert processes_mentioning(str(data_dir)) == [], "processes left behind after the first stop"
    assert processes_mentioning(f"--owner={process.pid}") == [], "execution environments left behind"

    process = start(port, data_dir)  # a second start: state kept, ready fast
    try:
        assert wait_healthy(port, process, READY_SECONDS_MAX) < READY_SECONDS_MAX
        assert (data_dir / "token-secret").read_text() == secret
    finally:
        stop(process, signum)
    deadline = time.monotonic() + 5
    while processes_mentioning(str(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(data_dir)) == [], "processes left behind (java?)"
