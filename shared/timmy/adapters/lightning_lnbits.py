"""The Lightning port over LNbits' REST API (checked against a real LNbits 1.6.2, see the tests).

One LNbits wallet is Timmy's; its **admin key** is the API key (paying needs it, and it also makes
and reads invoices). The routes used, and what LNbits really answers:

- `POST /api/v1/payments {"out": false, "amount", "unit": "sat", "memo", "expiry", "webhook",
  "extra"}` → 201, the payment object (`amount` and `fee` in msat, `status` pending|success|failed,
  `expiry` an ISO time that is naive (UTC) here and `+00:00` elsewhere).
- `GET /api/v1/payments/{hash}` → `{"paid", "status", "preimage", "details": <payment>}`; `details`
  only with a key of the wallet that holds the payment. A wrong key is not refused: the answer just
  lacks `details` (so it is an error here, never "pending"). Another wallet's or an unknown hash: 404
  `Payment does not exist.` → None.
- `POST /api/v1/payments {"out": true, "bolt11"}` → 201 with the outgoing payment (`status` success,
  or pending when the funding source has not answered within LNbits' own wait, 5 s by default);
  refusals are HTTP 520 `{"detail", "status"}` where `status` "failed" means nothing was paid
  (e.g. `Internal invoice already paid.`, `Bolt11 decoding failed.`, `Insufficient balance.`) and
  "pending" means the outcome is not known (`Payment is still pending.`).
- LNbits has **no per-request fee limit**: the most it lets a payment spend on routing is its fee
  reserve, `max(LNBITS_RESERVE_FEE_MIN msat, LNBITS_RESERVE_FEE_PERCENT of the amount)`, plus its
  service fee if the operator set one; `GET /api/v1/payments/fee-reserve?invoice=` answers that
  total in msat (reckoned as for an external payment, so an internal one is over-estimated). `pay`
  asks it first and refuses, paying nothing, when it exceeds `fee_limit_sats`.

Errors: no answer, a timeout, a 5xx (or a 520 whose status is not "failed"/"success"), a 408/429,
or an answer that is not the expected JSON → LightningUnavailable (outcome unknown); any other
4xx/3xx (a redirect means an LNbits without its first install, or a wrong URL) → LightningError.
Amounts are msat in LNbits: converted exactly to sats (a fractional amount is refused), fees rounded
up to whole sats.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from timmy.adapters.http_json import HttpAnswer, HttpAnswerTooLarge, HttpTimedOut, HttpUnreachable, exchange
from timmy.config import Settings
from timmy.errors import Unavailable
from timmy.ports.clock import Clock
from timmy.ports.lightning import Invoice, InvoiceState, LightningError, LightningUnavailable, Payment, PaymentState

ApiKey = Callable[[], str]  # asked on first use (a Secrets Manager read in AWS)
ANSWER_BYTES_MAX = 262_144  # a payment object is about 2 KB
NOTIFICATION_BYTES_MAX = 65_536
NOT_FOUND_DETAIL = "Payment does not exist."
_HASH = re.compile(r"[0-9a-fA-F]{64}")
_PAYMENT_STATES = {"success": PaymentState.SUCCEEDED, "failed": PaymentState.FAILED, "pending": PaymentState.IN_FLIGHT}


def _sats(msat: Any, what: str) -> int:
    """An exact msat amount as sats; a fractional or non-integer one is refused."""
    if isinstance(msat, bool) or not isinstance(msat, int):
        raise LightningUnavailable(f"LNbits gave {what} as {msat!r}, not an integer number of msat")
    sats, rest = divmod(abs(msat), 1000)
    if rest:
        raise LightningError(f"LNbits gave {what} as {msat} msat, not a whole number of sats")
    return sats


def _fee_sats(msat: Any) -> int:
    if isinstance(msat, bool) or not isinstance(msat, int):
        raise LightningUnavailable(f"LNbits gave a fee of {msat!r}, not an integer number of msat")
    return math.ceil(abs(msat) / 1000)


def _epoch(value: Any) -> float | None:
    """An LNbits time (ISO 8601; naive means UTC) as epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _hash(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and _HASH.fullmatch(value) else None


def _detail(answer: HttpAnswer) -> tuple[str, str | None]:
    """The `detail` and `status` of an LNbits error answer."""
    if (body := answer.json_object()) is None:
        return answer.body[:200].decode(errors="replace"), None
    status = body.get("status")
    return str(body.get("detail", ""))[:500], status if isinstance(status, str) else None


class LnbitsLightning:
    """`Lightning` on one LNbits wallet. Every call has a whole-exchange deadline of `timeout_seconds`
    (keep it above LNbits' 5 s pay wait, so a slow payment comes back as in flight, not a timeout)."""

    name = "lnbits"

    def __init__(self, base_url: str, api_key: ApiKey, timeout_seconds: float = 10.0, clock: Clock | None = None):
        if not base_url.startswith(("https://", "http://")):
            raise ValueError(f"the LNbits URL must be http(s), not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout_seconds = timeout_seconds
        self.clock = clock

    # --- the port ------------------------------------------------------------------------

    def create_invoice(self, amount_sats: int, memo: str, expiry_seconds: int, owner: str, webhook_url: str) -> Invoice:
        if isinstance(amount_sats, bool) or not isinstance(amount_sats, int) or amount_sats <= 0:
            raise LightningError(f"an invoice is for a positive whole number of sats, not {amount_sats!r}")
        if expiry_seconds <= 0:
            raise LightningError(f"an invoice expires after a positive number of seconds, not {expiry_seconds!r}")
        body = {
            "out": False,
            "amount": amount_sats,
            "unit": "sat",
            "memo": memo,
            "expiry": expiry_seconds,
            "webhook": webhook_url,
            "extra": {"owner": owner},
        }
        answer = self._call("POST", "/api/v1/payments", body)
        self._raise_for_status(answer)
        invoice = self._invoice(self._json_object(answer))
        if invoice is None or invoice.amount_sats != amount_sats:
            raise LightningUnavailable(f"LNbits answered a new invoice that is not one for {amount_sats} sats")
        return invoice

    def lookup_invoice(self, payment_hash: str) -> Invoice | None:
        details = self._details(payment_hash)
        return None if details is None else self._invoice(details)

    def pay(self, bolt11: str, amount_sats: int, fee_limit_sats: int) -> Payment:
        if fee_limit_sats < 0:
            raise LightningError(f"a fee limit is at least 0 sats, not {fee_limit_sats!r}")
        reserve_msat = self._fee_reserve_msat(bolt11)
        if reserve_msat > fee_limit_sats * 1000:
            raise LightningError(
                f"LNbits would let this payment spend up to {reserve_msat} msat in fees (its fee reserve), "
                f"over the limit of {fee_limit_sats} sats; nothing was paid"
            )
        answer = self._call("POST", "/api/v1/payments", {"out": True, "bolt11": bolt11})
        self._raise_for_status(answer)
        payment = self._payment(self._json_object(answer))
        if payment is None:
            raise LightningUnavailable("LNbits answered a payment that is not an outgoing one")
        return payment

    def payment(self, payment_hash: str) -> Payment | None:
        details = self._details(payment_hash)
        return None if details is None else self._payment(details)

    def notified_hash(self, body: str, headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
        """LNbits posts the payment object JSON-encoded twice (a JSON string holding JSON), unsigned;
        a once-encoded object is read too. Only its `payment_hash` is used."""
        if len(body) > NOTIFICATION_BYTES_MAX:
            return None
        try:
            value: Any = json.loads(body)
            if isinstance(value, str):
                value = json.loads(value)
        except (ValueError, RecursionError):
            return None
        return _hash(value.get("payment_hash")) if isinstance(value, dict) else None

    # --- HTTP ----------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> HttpAnswer:
        headers = {"Accept": "application/json", "X-Api-Key": self.api_key(), "User-Agent": "timmy-lightning/1"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            return exchange(
                method,
                self.base_url + path,
                timeout_seconds=self.timeout_seconds,
                body_bytes_max=ANSWER_BYTES_MAX,
                headers=headers,
                body=data,
            )
        except (HttpTimedOut, HttpUnreachable, HttpAnswerTooLarge) as error:
            raise LightningUnavailable(f"LNbits {method} {path.split('?')[0]}: {error}") from error

    @staticmethod
    def _raise_for_status(answer: HttpAnswer) -> None:
        if 200 <= answer.status < 300:
            return
        detail, status = _detail(answer)
        if answer.status == 520 and status in ("failed", "success"):
            raise LightningError(f"LNbits refused: {detail}")
        if answer.status >= 500 or answer.status in (408, 429):
            raise LightningUnavailable(f"LNbits answered {answer.status}: {detail}")
        raise LightningError(f"LNbits answered {answer.status}: {detail}")

    @staticmethod
    def _json_object(answer: HttpAnswer) -> dict[str, Any]:
        if (body := answer.json_object()) is None:
            raise LightningUnavailable(f"LNbits answered {answer.status} with something that is not a JSON object")
        return body

    def _details(self, payment_hash: str) -> dict[str, Any] | None:
        """This wallet's payment object for `payment_hash`, or None when the wallet has none."""
        if _hash(payment_hash) is None:
            return None
        answer = self._call("GET", f"/api/v1/payments/{quote(payment_hash.lower())}")
        if answer.status == 404 and _detail(answer)[0] == NOT_FOUND_DETAIL:
            return None
        self._raise_for_status(answer)
        body = self._json_object(answer)
        details = body.get("details")
        if isinstance(details, dict):
            return details
        if "paid" in body:  # what LNbits tells a key it does not know (it does not refuse it)
            raise LightningError("LNbits answered without the payment's details: the API key is not a key of the wallet")
        raise LightningUnavailable("LNbits answered a lookup with neither the payment nor its paid state")

    def _fee_reserve_msat(self, bolt11: str) -> int:
        answer = self._call("GET", f"/api/v1/payments/fee-reserve?invoice={quote(bolt11, safe='')}")
        if not 200 <= answer.status < 300:
            # Nothing is paid yet, whatever went wrong; LNbits answers 500 for an unreadable invoice.
            detail, _ = _detail(answer)
            raise LightningError(f"LNbits could not reckon the fee reserve of this invoice ({answer.status}: {detail}); nothing was paid")
        reserve = self._json_object(answer).get("fee_reserve")
        if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
            raise LightningUnavailable(f"LNbits answered a fee reserve of {reserve!r}")
        return reserve

    # --- LNbits' payment object → the port's types -----------------------------------------

    def _now(self) -> float:
        return self.clock.now() if self.clock is not None else time.time()

    def _invoice(self, details: dict[str, Any]) -> Invoice | None:
        """An incoming payment object as an Invoice; None when it is an outgoing one."""
        amount = details.get("amount")
        if isinstance(amount, int) and amount < 0:
            return None
        payment_hash, bolt11 = _hash(details.get("payment_hash")), details.get("bolt11")
        if payment_hash is None or not isinstance(bolt11, str):
            raise LightningUnavailable("LNbits answered an invoice without a payment hash or bolt11")
        amount_sats = _sats(amount, "an invoice's amount")
        expires_at = _epoch(details.get("expiry"))
        if expires_at is None:
            expires_at = math.inf  # LNbits always sets one; without it the invoice never lapses here
        status = details.get("status")
        if status == "success":
            paid_at = _epoch(details.get("updated_at"))
            return Invoice(payment_hash, bolt11, amount_sats, expires_at, InvoiceState.PAID, amount_sats, paid_at)
        if status == "failed" or (status == "pending" and expires_at <= self._now()):
            return Invoice(payment_hash, bolt11, amount_sats, expires_at, InvoiceState.EXPIRED)
        if status == "pending":
            return Invoice(payment_hash, bolt11, amount_sats, expires_at, InvoiceState.PENDING)
        raise LightningUnavailable(f"LNbits answered an invoice in the unknown status {status!r}")

    @staticmethod
    def _payment(details: dict[str, Any]) -> Payment | None:
        """An outgoing payment object as a Payment; None when it is an incoming one."""
        amount = details.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise LightningUnavailable(f"LNbits answered a payment amount of {amount!r}")
        if amount >= 0:
            return None
        payment_hash = _hash(details.get("payment_hash"))
        status = details.get("status")
        state = _PAYMENT_STATES.get(status) if isinstance(status, str) else None
        if payment_hash is None or state is None:
            raise LightningUnavailable(f"LNbits answered a payment without a hash or in the unknown status {status!r}")
        preimage = details.get("preimage") if state is PaymentState.SUCCEEDED else None
        return Payment(
            payment_hash=payment_hash,
            state=state,
            amount_sats=_sats(amount, "a payment's amount"),
            # While in flight LNbits records its fee reserve as the fee (the most it may spend).
            fee_sats=0 if state is PaymentState.FAILED else _fee_sats(details.get("fee", 0)),
            preimage=preimage if isinstance(preimage, str) else None,
            failure_reason="LNbits marked the payment failed" if state is PaymentState.FAILED else None,
        )


def lnbits_from_settings(settings: Settings, api_key: ApiKey, clock: Clock | None = None) -> LnbitsLightning:
    """The adapter for `LIGHTNING_BACKEND=lnbits`: `LNBITS_URL`, `LNBITS_TIMEOUT_SECONDS`, and the key
    callable (`lambda: timmy_http.secrets.lightning_api_key(settings)`: asked on the first call)."""
    if not settings.lnbits_url:
        raise Unavailable("LNBITS_URL is not configured (LIGHTNING_BACKEND=lnbits)", code="not_configured")
    return LnbitsLightning(settings.lnbits_url, api_key, settings.lnbits_timeout_seconds, clock)
