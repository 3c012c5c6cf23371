"""A real LNbits 1.6.2 for tests: one uvicorn process on a free 127.0.0.1 port, FakeWallet funding.

`make install` puts LNbits into its own venv (`.venv-lnbits`: it pins libraries Timmy does not use).
`LnbitsServer.start()` runs it from a temporary folder holding the `lnbits` link its static files
need (see ../shared/FACTS.md), does the first install, makes Timmy's wallet and a payer wallet,
funds the payer, and hands back an `Lnbits` with the keys and two helpers. `stop()` ends it by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from local.dynamodb import free_port
from local.template import ROOT

VENV = ROOT / ".venv-lnbits"
STARTUP_SECONDS_MAX = 60
PAYER_FUNDS_SATS = 1_000_000
HTTP_TIMEOUT_SECONDS = 10


def venv_python() -> Path | None:
    """The LNbits venv's python, or None when `make install` has not made it."""
    python = VENV / "bin" / "python"
    return python if python.exists() and _package_dir() is not None else None


def _package_dir() -> Path | None:
    found = sorted(VENV.glob("lib/python3*/site-packages/lnbits/__main__.py"))
    return found[0].parent if found else None


class LnbitsHttpError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(f"LNbits answered {status}: {body}")
        self.status = status
        self.body = body


def request(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None) -> Any:
    """One JSON request to LNbits; an HTTP error raises LnbitsHttpError with the decoded body."""
    data = None if body is None else json.dumps(body).encode()
    all_headers = {"Accept": "application/json", **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
    call = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(call, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            decoded: Any = json.loads(raw)
        except ValueError:
            decoded = raw.decode(errors="replace")
        raise LnbitsHttpError(error.code, decoded) from None


@dataclass(frozen=True)
class Wallet:
    id: str
    admin_key: str
    invoice_key: str


@dataclass
class Lnbits:
    """A running LNbits: Timmy's wallet (what the adapter uses) and a funded payer wallet."""

    url: str
    access_token: str  # the super user's, for admin routes
    timmy: Wallet
    payer: Wallet
    log_path: Path = field(repr=False)

    def pay(self, bolt11: str) -> Any:
        """Pay `bolt11` from the payer wallet (an internal payment when it is Timmy's invoice)."""
        return request(f"{self.url}/api/v1/payments", "POST", {"out": True, "bolt11": bolt11}, {"X-Api-Key": self.payer.admin_key})

    def payer_invoice(self, amount_sats: int, memo: str = "payout test", expiry_seconds: int = 3_600) -> Any:
        """A new invoice of the payer wallet (for Timmy's outgoing payments): payment_hash, bolt11, …"""
        body = {"out": False, "amount": amount_sats, "unit": "sat", "memo": memo, "expiry": expiry_seconds}
        return request(f"{self.url}/api/v1/payments", "POST", body, {"X-Api-Key": self.payer.invoice_key})

    def fund(self, wallet: Wallet, sats: int) -> None:
        """Credit `sats` to `wallet` out of thin air (the super user's balance route; FakeWallet)."""
        request(
            f"{self.url}/users/api/v1/balance", "PUT", {"id": wallet.id, "amount": sats}, {"Authorization": f"Bearer {self.access_token}"}
        )

    def balance_msat(self, wallet: Wallet) -> int:
        return int(request(f"{self.url}/api/v1/wallet", headers={"X-Api-Key": wallet.invoice_key})["balance"])

    def payment(self, wallet: Wallet, payment_hash: str) -> Any:
        return request(f"{self.url}/api/v1/payments/{payment_hash}", headers={"X-Api-Key": wallet.invoice_key})


class LnbitsServer:
    """One LNbits process; `start()` → `Lnbits`, `stop()` by PID (SIGTERM, then SIGKILL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Lnbits:
        python, package = venv_python(), _package_dir()
        if python is None or package is None:
            raise RuntimeError(f"{VENV} is missing LNbits: run `make install`")
        self.folder = Path(tempfile.mkdtemp(prefix="timmy-lnbits-"))
        (self.folder / "lnbits").symlink_to(package, target_is_directory=True)
        (self.folder / "data").mkdir()
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.folder),
            "LNBITS_DATA_FOLDER": str(self.folder / "data"),
            "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
            "LNBITS_ADMIN_UI": "true",
            # Webhooks to 127.0.0.1 (the tests' receivers) are refused without these two.
            "LNBITS_CALLBACK_ALLOW_PRIVATE_IPS": "true",
            "LNBITS_CALLBACK_URL_RULES": "[]",
        }
        log_path = self.folder / "lnbits.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [str(python), "-m", "uvicorn", "lnbits.__main__:app", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.folder,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(log_path)
            return self._set_up(log_path)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS_MAX
        while True:
            try:
                # Any answer will do: before the first install every route redirects to it.
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=HTTP_TIMEOUT_SECONDS):
                    return
            except urllib.error.HTTPError:
                return
            except OSError:
                pass
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"LNbits exited with {self.process.returncode}:\n{log_path.read_text(errors='replace')[-4000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"LNbits did not answer in {STARTUP_SECONDS_MAX} s:\n{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.1)

    def _set_up(self, log_path: Path) -> Lnbits:
        password = "timmy-test-password"  # a throwaway super user of a throwaway instance
        login = request(
            f"{self.url}/api/v1/auth/first_install",
            "PUT",
            {"username": "timmy_admin", "password": password, "password_repeat": password},
        )
        token = login["access_token"]
        lnbits = Lnbits(url=self.url, access_token=token, timmy=self._wallet("timmy"), payer=self._wallet("payer"), log_path=log_path)
        lnbits.fund(lnbits.payer, PAYER_FUNDS_SATS)
        return lnbits

    def _wallet(self, name: str) -> Wallet:
        made = request(f"{self.url}/api/v1/account", "POST", {"name": name})
        return Wallet(id=made["id"], admin_key=made["adminkey"], invoice_key=made["inkey"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None


@pytest.fixture(scope="session")
def lnbits() -> Iterator[Lnbits]:
    """A real LNbits for the session (registered in tests/conftest.py). Skipped only
    outside CI when `make install` has not made its venv; in CI a missing LNbits fails."""
    if venv_python() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{VENV} has no LNbits; `make install` makes it (CI must run the LNbits tests)")
        pytest.skip(f"no LNbits in {VENV}: run `make install` to test the LNbits adapter")
    server = LnbitsServer()
    try:
        yield server.start()
    finally:
        server.stop()
