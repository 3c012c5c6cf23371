"""schemathesis against the local stack: every operation of `/api/openapi.json`, positive and
negative examples, every check, anonymously, with the admin key and with a nostr_token.

A failure here means the spec and the server disagree (an undocumented status, a body that does not
match its schema, valid data refused or invalid data accepted) or a route answered a 5xx. The run
is bounded: `SCHEMATHESIS_MAX_EXAMPLES` examples per operation (default below) and a fixed seed, so
CI runs the same cases every time; set `SCHEMATHESIS_SEED` to explore others. The bad inputs these
runs try, and what each gets, are listed in docs/bad-inputs.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from timmy.identity.signer import Keys

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "20261203"))
RUN_SECONDS_MAX = 300
ADMIN_KEY = "test-admin-key"  # tests/conftest.py's ADMIN_API_KEY

pytestmark = pytest.mark.slow


def schemathesis(stack: Any, tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """`schemathesis run` against the stack's gateway, every check on; its report is the output."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        f"{stack.gateway.url}/api/openapi.json",
        "--url",
        stack.gateway.url,
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--output-sanitize",
        "false",  # test credentials only; a report must show what was sent
        *options,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_SECONDS_MAX, check=False, env={**os.environ, "NO_COLOR": "1"}
    )


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-20_000:]
    assert "No operations" not in report, report[-5_000:]


def test_every_operation_anonymously(stack: Any, tmp_path: Path) -> None:
    assert_clean(schemathesis(stack, tmp_path))


def test_the_admin_operations_with_the_admin_key(stack: Any, tmp_path: Path) -> None:
    assert_clean(schemathesis(stack, tmp_path, "--include-path-regex", "^/api/admin/", "--header", f"Authorization: Bearer {ADMIN_KEY}"))


def test_the_identity_operations_with_a_nostr_token(stack: Any, tmp_path: Path) -> None:
    url = f"{stack.gateway.url}/api/identity/token"
    answer = stack.request("POST", "/api/identity/token", headers={"authorization": Keys.generate().nip98_header(url, "POST")})
    assert answer.status == 200, answer.body
    token = answer.json()["token"]
    result = schemathesis(
        stack, tmp_path, "--include-path-regex", "^/api/(estimate|identity/me)$", "--header", f"Authorization: Bearer {token}"
    )
    assert_clean(result)
