"""The LNURL-pay port: a Lightning address (`name@domain`, LUD-16) → an invoice for an exact amount.

Used to pay refunds to a job's or session's `refund_address`. The resolver only asks for the
invoice and checks it (amount, description hash, expiry); paying it is the payout machinery's job.
Every failure is typed, so the flow can leave the refund claimable: `LnurlUnreachable` (may work
later: retry), `LnurlRefused` (the service answered, but wrongly or with an error: retrying will
not help soon). `parse_lightning_address` is the syntax check a route runs on input (400).

Adapter: `adapters/lnurl_pay.py` (`LnurlPayResolver`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from timmy.errors import InvalidInput

USERNAME = re.compile(r"[a-z0-9\-_.+]{1,64}")  # LUD-16's alphabet (always fullmatch: `$` would take a trailing newline)
LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
ADDRESS_CHARS_MAX = 320


class LnurlError(Exception):
    """The address did not give a payable invoice."""

    retryable = False


class LnurlUnreachable(LnurlError):
    """No answer (refused, timed out, TLS, a 5xx): the service may answer later."""

    retryable = True


class LnurlRefused(LnurlError):
    """The service answered, but with `{"status": "ERROR"}`, a malformed document, an amount it does
    not accept, or an invoice that does not match what was asked."""


@dataclass(frozen=True)
class LightningAddress:
    name: str
    domain: str  # a host name, or `localhost:PORT` / `127.0.0.1:PORT` where tests allow it

    def __str__(self) -> str:
        return f"{self.name}@{self.domain}"


@dataclass(frozen=True)
class ResolvedInvoice:
    address: str
    bolt11: str
    payment_hash: str
    amount_sats: int
    expires_at: float


def parse_lightning_address(text: object, allow_local: bool = False) -> LightningAddress:
    """`name@domain`, lower-cased; a 400 `invalid_refund_address` otherwise. The domain is a DNS
    name with a dot: no IP literal, no port, no `localhost` (a refund address must not point Timmy
    at its own network), unless `allow_local` (tests: `localhost:PORT`, `127.0.0.1:PORT`)."""
    if not isinstance(text, str) or len(text) > ADDRESS_CHARS_MAX or text.count("@") != 1:
        raise _invalid(text)
    name, domain = text.strip().lower().split("@")
    if not USERNAME.fullmatch(name):
        raise _invalid(text)
    if allow_local and re.fullmatch(r"(localhost|127\.0\.0\.1):\d{1,5}", domain):
        return LightningAddress(name, domain)
    labels = domain.split(".")
    if len(labels) < 2 or not all(LABEL.fullmatch(label) for label in labels) or not labels[-1][0].isalpha():
        raise _invalid(text)
    return LightningAddress(name, domain)


def _invalid(text: object) -> InvalidInput:
    shown = text[:80] if isinstance(text, str) else type(text).__name__
    return InvalidInput(
        f"{shown!r} is not a Lightning address: use name@domain (LUD-16), e.g. alice@walletofsatoshi.com",
        code="invalid_refund_address",
    )


class LnurlPay(Protocol):
    def invoice_for(self, address: str, amount_sats: int, comment: str = "") -> ResolvedInvoice:
        """An invoice for exactly `amount_sats` to `address`, checked; raises an LnurlError (or
        InvalidInput for a malformed address)."""
        ...
