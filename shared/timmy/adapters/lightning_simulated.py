"""The simulated Lightning backend: the local default, and the payer and payee of the tests.

Its invoices are real BOLT11 (amount, payment hash, payment secret, description, expiry), signed
by a node key kept under `TIMMY_DATA_DIR`, so any decoder reads them and recovers the payee. Its
state is one SQLite file beside the key, shared by every process of the local stack.

- `settle` (behind `POST /dev/lightning/pay`) pays one of its invoices and notifies the
  invoice's webhook URL the way a real backend does: a POST naming the payment hash, unsigned.
- `wallet_invoice` makes an invoice of an outside wallet, for payouts to pay; its `behaviour`
  says how paying it goes: `succeed`, `fail`, `in_flight` (the outcome stays unknown until
  `resolve_payment`) or `timeout` (the payment goes out but the call raises LightningUnavailable).
- `pay` refuses an invoice it has paid (or is paying) before, as real nodes do; a failed one may be retried.

Written by hand: a node simulator is this project's own (no library offers one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from timmy.ports.clock import Clock
from timmy.ports.lightning import Invoice, InvoiceState, LightningError, LightningUnavailable, Payment, PaymentState

log = logging.getLogger(__name__)

CURRENCY = "bcrt"  # regtest: these invoices can never be paid on a real network
BEHAVIOURS = ("succeed", "fail", "in_flight", "timeout")
FEE_SATS = 1  # what a simulated route costs (within the fee limit; 0 when the limit is 0)
NOTIFY_TIMEOUT_SECONDS = 10
HASH_HEX_CHARS = 64
SETUP_ATTEMPTS_MAX = 100  # a fresh file's WAL switch answers "locked" at once (no busy wait) while another process makes it
SETUP_RETRY_SECONDS = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invoices (
    payment_hash TEXT PRIMARY KEY, bolt11 TEXT NOT NULL, amount_sats INTEGER NOT NULL, memo TEXT NOT NULL,
    owner TEXT NOT NULL, webhook_url TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    state TEXT NOT NULL, received_sats INTEGER NOT NULL DEFAULT 0, paid_at REAL, wallet INTEGER NOT NULL,
    behaviour TEXT NOT NULL DEFAULT 'succeed');
CREATE TABLE IF NOT EXISTS payments (
    payment_hash TEXT PRIMARY KEY, bolt11 TEXT NOT NULL, amount_sats INTEGER NOT NULL, fee_sats INTEGER NOT NULL,
    state TEXT NOT NULL, failure_reason TEXT, created_at REAL NOT NULL);
"""


def http_notify(url: str, body: bytes) -> None:
    """POST a notification, as a backend's webhook does (no retry: real backends rarely retry)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("a webhook URL is http(s)")
    import urllib.request  # here, not at import: only a payment notifies (~5 ms of http.client and email)

    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=NOTIFY_TIMEOUT_SECONDS) as answer:  # noqa: S310 - our own webhook URL
        answer.read()


class UnknownInvoice(LightningError):
    """No invoice of Timmy's has this bolt11 or payment hash (the dev route's 404)."""


class SimulatedLightning:
    name = "simulated"

    def __init__(self, data_dir: str | Path, clock: Clock, notify: Callable[[str, bytes], None] = http_notify, notify_async: bool = False):
        self.data_dir = Path(data_dir)
        self.clock = clock
        self.notify = notify
        self.notify_async = notify_async  # as a real backend: the payer's answer does not wait for the webhook
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._db_path = self.data_dir / "lightning-simulated.sqlite3"
        self._node_key = self._key("lightning-node.key")
        self._wallet_key = self._key("lightning-wallet.key")  # the outside wallet payouts pay
        for attempt in range(SETUP_ATTEMPTS_MAX):
            try:
                self._setup()
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or attempt == SETUP_ATTEMPTS_MAX - 1:
                    raise
                time.sleep(SETUP_RETRY_SECONDS)

    def _setup(self) -> None:
        setup = sqlite3.connect(self._db_path, timeout=30)
        try:
            setup.execute("PRAGMA journal_mode=WAL")  # the processes of the local stack share the file
            setup.executescript(_SCHEMA)
        finally:
            setup.close()

    def _key(self, name: str) -> str:
        """The key kept in `name`, made once. The stack's environments start side by side on a fresh
        folder: a key is written whole to a file of its own, then linked into place (atomic, and
        never over another's), so no process reads a half-written key or keeps a key that lost."""
        path = self.data_dir / name
        if not path.exists():
            draft = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another environment's key is in place: everyone uses that one
            finally:
                draft.unlink()
        return path.read_text().strip()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self._db_path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")  # one writer at a time: a settle or a pay is checked and written together
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    # --- invoices (Timmy's, and the outside wallet's) ---------------------------------------

    def _issue(
        self, amount_sats: int, memo: str, expiry_seconds: int, owner: str, webhook_url: str, wallet: bool, behaviour: str
    ) -> Invoice:
        from bolt11 import Bolt11, MilliSatoshi, Tag, TagChar, Tags, encode

        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).hexdigest()
        now = int(self.clock.now())
        tags = Tags(
            [
                Tag(TagChar.payment_hash, payment_hash),
                Tag(TagChar.payment_secret, secrets.token_hex(32)),
                Tag(TagChar.description, memo),
                Tag(TagChar.expire_time, expiry_seconds),
            ]
        )
        invoice = Bolt11(currency=CURRENCY, date=now, tags=tags, amount_msat=MilliSatoshi(amount_sats * 1000))
        bolt11 = encode(invoice, self._wallet_key if wallet else self._node_key)
        with self._db() as db:
            db.execute(
                "INSERT INTO invoices (payment_hash, bolt11, amount_sats, memo, owner, webhook_url, created_at, expires_at, state,"
                " wallet, behaviour) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (payment_hash, bolt11, amount_sats, memo, owner, webhook_url, now, now + expiry_seconds, int(wallet), behaviour),
            )
        return Invoice(payment_hash, bolt11, amount_sats, float(now + expiry_seconds))

    def create_invoice(self, amount_sats: int, memo: str, expiry_seconds: int, owner: str, webhook_url: str) -> Invoice:
        return self._issue(amount_sats, memo, expiry_seconds, owner, webhook_url, wallet=False, behaviour="succeed")

    def wallet_invoice(self, amount_sats: int, memo: str = "a payout", behaviour: str = "succeed", expiry_seconds: int = 3600) -> Invoice:
        """An invoice of the outside wallet (what a user hands Timmy for a refund)."""
        if behaviour not in BEHAVIOURS:
            raise LightningError(f"behaviour is one of {', '.join(BEHAVIOURS)}")
        return self._issue(amount_sats, memo, expiry_seconds, "wallet", "", wallet=True, behaviour=behaviour)

    def lookup_invoice(self, payment_hash: str) -> Invoice | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM invoices WHERE payment_hash = ? AND wallet = 0", (payment_hash,)).fetchone()
        return None if row is None else self._invoice(row)

    def _invoice(self, row: sqlite3.Row) -> Invoice:
        state = InvoiceState(row["state"])
        if state is InvoiceState.PENDING and self.clock.now() >= row["expires_at"]:
            state = InvoiceState.EXPIRED
        return Invoice(
            row["payment_hash"], row["bolt11"], row["amount_sats"], row["expires_at"], state, row["received_sats"], row["paid_at"]
        )

    def settle(self, bolt11_or_hash: str, amount_sats: int | None = None, notify: bool = True) -> Invoice:
        """Pay one of Timmy's invoices (`amount_sats`: what the payer sends, the invoice's amount
        by default) and notify its webhook, as a real backend would."""
        key = bolt11_or_hash.strip()
        column = "payment_hash" if len(key) == HASH_HEX_CHARS and all(c in "0123456789abcdef" for c in key) else "bolt11"
        with self._db() as db:
            row = db.execute(f"SELECT * FROM invoices WHERE {column} = ? AND wallet = 0", (key,)).fetchone()  # noqa: S608 - a fixed column
            if row is None:
                raise UnknownInvoice("no such invoice: pay one Timmy issued (its bolt11 or payment_hash)")
            invoice = self._invoice(row)
            if invoice.state is InvoiceState.PAID:
                raise LightningError("the invoice is already paid")
            if invoice.state is InvoiceState.EXPIRED:
                raise LightningError("the invoice has expired")
            received = row["amount_sats"] if amount_sats is None else amount_sats
            if received < row["amount_sats"]:
                raise LightningError(f"the invoice asks for at least {row['amount_sats']} sats")
            now = self.clock.now()
            db.execute(
                "UPDATE invoices SET state = 'paid', received_sats = ?, paid_at = ? WHERE payment_hash = ?",
                (received, now, row["payment_hash"]),
            )
        if notify and row["webhook_url"]:
            self._notify(row["webhook_url"], row["payment_hash"])
        return Invoice(row["payment_hash"], row["bolt11"], row["amount_sats"], row["expires_at"], InvoiceState.PAID, received, now)

    def _notify(self, url: str, payment_hash: str) -> None:
        if self.notify_async:
            threading.Thread(target=self._deliver, args=(url, payment_hash), name="simulated-webhook", daemon=True).start()
        else:
            self._deliver(url, payment_hash)

    def _deliver(self, url: str, payment_hash: str) -> None:
        try:
            self.notify(url, json.dumps({"payment_hash": payment_hash}).encode())
        except Exception as error:  # a backend's webhook is fire and forget; the sweeper catches up
            log.warning("the webhook was not delivered", extra={"url": url.split("?")[0], "error": str(error)})

    def notified_hash(self, body: str, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        try:
            message = json.loads(body)
        except ValueError:
            return None
        value = message.get("payment_hash") if isinstance(message, dict) else None
        if isinstance(value, str) and len(value) == HASH_HEX_CHARS and all(c in "0123456789abcdef" for c in value):
            return value
        return None

    # --- payments out -----------------------------------------------------------------------

    def pay(self, bolt11: str, amount_sats: int, fee_limit_sats: int) -> Payment:
        from timmy.invoice_codec import decode

        decoded = decode(bolt11)
        if decoded.amount_sats != amount_sats:
            raise LightningError("the amount does not match the invoice")
        fee = min(FEE_SATS, fee_limit_sats)
        with self._db() as db:
            before = db.execute("SELECT state FROM payments WHERE payment_hash = ?", (decoded.payment_hash,)).fetchone()
            if before is not None and before["state"] != "failed":
                raise LightningError("this invoice was paid before")  # a failed payment may be tried again, as on a real node
            db.execute("DELETE FROM payments WHERE payment_hash = ? AND state = 'failed'", (decoded.payment_hash,))
            target = db.execute("SELECT * FROM invoices WHERE payment_hash = ?", (decoded.payment_hash,)).fetchone()
            if target is not None and not target["wallet"]:
                raise LightningError("an invoice of this node cannot pay itself")
            if self.clock.now() >= decoded.expires_at:
                raise LightningError("the invoice has expired")
            behaviour = target["behaviour"] if target is not None else "succeed"
            state = {"succeed": "succeeded", "fail": "failed", "in_flight": "in_flight", "timeout": "in_flight"}[behaviour]
            reason = "no route to the payee (simulated)" if state == "failed" else None
            db.execute(
                "INSERT INTO payments (payment_hash, bolt11, amount_sats, fee_sats, state, failure_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (decoded.payment_hash, bolt11.strip(), amount_sats, fee if state != "failed" else 0, state, reason, self.clock.now()),
            )
            if state == "succeeded" and target is not None:
                db.execute(
                    "UPDATE invoices SET state = 'paid', received_sats = ?, paid_at = ? WHERE payment_hash = ?",
                    (amount_sats, self.clock.now(), decoded.payment_hash),
                )
        if behaviour == "timeout":
            raise LightningUnavailable("the backend did not answer in time (simulated)")
        payment = self.payment(decoded.payment_hash)
        assert payment is not None
        return payment

    def payment(self, payment_hash: str) -> Payment | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM payments WHERE payment_hash = ?", (payment_hash,)).fetchone()
        if row is None:
            return None
        state = PaymentState(row["state"])
        return Payment(
            row["payment_hash"],
            state,
            row["amount_sats"],
            row["fee_sats"] if state is PaymentState.SUCCEEDED else 0,
            None,
            row["failure_reason"],
        )

    def resolve_payment(self, payment_hash: str, succeed: bool) -> Payment:
        """The final outcome of a payment left in flight (tests and the dev route)."""
        with self._db() as db:
            row = db.execute("SELECT state FROM payments WHERE payment_hash = ?", (payment_hash,)).fetchone()
            if row is None or row["state"] != "in_flight":
                raise LightningError("no payment in flight with that hash")
            if succeed:
                db.execute("UPDATE payments SET state = 'succeeded' WHERE payment_hash = ?", (payment_hash,))
                db.execute(
                    "UPDATE invoices SET state = 'paid', received_sats = amount_sats, paid_at = ? WHERE payment_hash = ?",
                    (self.clock.now(), payment_hash),
                )
            else:
                db.execute(
                    "UPDATE payments SET state = 'failed', failure_reason = 'the route failed (simulated)' WHERE payment_hash = ?",
                    (payment_hash,),
                )
        payment = self.payment(payment_hash)
        assert payment is not None
        return payment

    def listing(self) -> dict[str, list[dict[str, Any]]]:
        """Every invoice (Timmy's and the outside wallet's) and every payout, newest first."""
        with self._db() as db:
            invoices = [dict(row) for row in db.execute("SELECT * FROM invoices ORDER BY created_at DESC")]
            payments = [dict(row) for row in db.execute("SELECT * FROM payments ORDER BY created_at DESC")]
        for invoice in invoices:
            invoice["wallet"] = bool(invoice["wallet"])
            invoice["webhook_url"] = invoice["webhook_url"].split("?")[0]  # not the token
            if invoice["state"] == "pending" and self.clock.now() >= invoice["expires_at"]:
                invoice["state"] = "expired"
        return {"invoices": invoices, "payouts": payments}
