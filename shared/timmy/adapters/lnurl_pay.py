"""LNURL-pay (LUD-06) for Lightning addresses (LUD-16), over the bounded HTTP exchange.

1. `GET https://<domain>/.well-known/lnurlp/<name>` → `{"tag": "payRequest", "callback",
   "minSendable", "maxSendable", "metadata", "commentAllowed"?}` (amounts in millisats);
2. `GET <callback>?amount=<msat>[&comment=…]` → `{"pr": "<bolt11>", "routes": []}`;
   either step may answer `{"status": "ERROR", "reason"}`;
3. the invoice is decoded (signature checked by `bolt11`) and must be for exactly the amount asked,
   not expired, and — when it carries a description hash — for sha256(metadata) (LUD-06's check that
   the invoice belongs to this pay request).

Only https is spoken, to a host whose every DNS address is public (checked, then the connection is
pinned to it), with no redirects: a refund address, or its callback, must not make Timmy call its
own network. `allow_local` (setting `LNURL_ALLOW_LOCAL`, tests only) admits http to 127.0.0.1 and
localhost.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

from timmy.adapters.http_json import HttpAnswerTooLarge, HttpTimedOut, HttpUnreachable, exchange
from timmy.config import Settings
from timmy.ports.lnurl import LightningAddress, LnurlRefused, LnurlUnreachable, ResolvedInvoice, parse_lightning_address

ANSWER_BYTES_MAX = 65_536
MSAT_PER_SAT = 1_000
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
EXPIRY_MARGIN_SECONDS = 30  # an invoice about to expire would fail in flight


class LnurlPayResolver:
    """Resolves Lightning addresses to checked invoices."""

    def __init__(self, timeout_seconds: float, allow_local: bool = False):
        self.timeout_seconds = timeout_seconds
        self.allow_local = allow_local

    @classmethod
    def from_settings(cls, settings: Settings) -> LnurlPayResolver:
        return cls(settings.lnurl_timeout_seconds, settings.lnurl_allow_local)

    def invoice_for(self, address: str, amount_sats: int, comment: str = "") -> ResolvedInvoice:
        if amount_sats < 1:
            raise ValueError(f"an LNURL payment needs at least 1 sat, not {amount_sats}")
        parsed = parse_lightning_address(address, allow_local=self.allow_local)
        pay_request = self._pay_request(parsed)
        amount_msat = amount_sats * MSAT_PER_SAT
        low, high = pay_request["minSendable"], pay_request["maxSendable"]
        if not low <= amount_msat <= high:
            raise LnurlRefused(f"{parsed} accepts {low}–{high} msat, not {amount_msat}")
        query = {"amount": str(amount_msat)}
        if comment and int(pay_request.get("commentAllowed") or 0) > 0:
            query["comment"] = comment[: int(pay_request["commentAllowed"])]
        callback = str(pay_request["callback"])
        answer = self._get_json(callback + ("&" if urlsplit(callback).query else "?") + urlencode(query))
        bolt11 = answer.get("pr")
        if not isinstance(bolt11, str) or not bolt11:
            raise LnurlRefused(f"{parsed}'s callback answered no invoice ('pr')")
        return self._checked(parsed, bolt11, amount_msat, str(pay_request["metadata"]))

    def _pay_request(self, address: LightningAddress) -> dict[str, Any]:
        scheme = "http" if self._local(address.domain.split(":")[0]) else "https"
        data = self._get_json(f"{scheme}://{address.domain}/.well-known/lnurlp/{address.name}")
        if data.get("tag") != "payRequest":
            raise LnurlRefused(f"{address} is not an LNURL-pay endpoint (tag {data.get('tag')!r})")
        for field in ("minSendable", "maxSendable"):
            value = data.get(field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise LnurlRefused(f"{address}: {field} is {value!r}, not a millisat amount")
        metadata = data.get("metadata")
        if not isinstance(metadata, str) or not isinstance(data.get("callback"), str):
            raise LnurlRefused(f"{address}: no callback or metadata string")
        try:
            entries = json.loads(metadata)
        except ValueError:
            raise LnurlRefused(f"{address}: metadata is not JSON") from None
        if not isinstance(entries, list) or not any(isinstance(e, list) and e[:1] == ["text/plain"] for e in entries):
            raise LnurlRefused(f"{address}: metadata has no text/plain entry (LUD-06)")
        self._url(str(data["callback"]))  # refuse a non-https or non-public callback before calling it
        return data

    def _checked(self, address: LightningAddress, bolt11: str, amount_msat: int, metadata: str) -> ResolvedInvoice:
        import bolt11 as bolt11_codec  # only the refund path pays its import

        try:
            invoice = bolt11_codec.decode(bolt11)
        except Exception as error:  # the library raises many kinds for a bad string
            raise LnurlRefused(f"{address}'s invoice does not decode: {error}") from error
        if invoice.amount_msat != amount_msat:
            raise LnurlRefused(f"{address}'s invoice is for {invoice.amount_msat} msat, not the {amount_msat} asked")
        expected_hash = hashlib.sha256(metadata.encode("utf-8")).hexdigest()
        if invoice.description_hash is not None and invoice.description_hash.lower() != expected_hash:
            raise LnurlRefused(f"{address}'s invoice has a description hash that is not sha256(metadata)")
        expires_at = float(invoice.date + invoice.expiry)
        if expires_at < time.time() + EXPIRY_MARGIN_SECONDS:
            raise LnurlRefused(f"{address}'s invoice has expired, or is about to")
        return ResolvedInvoice(str(address), bolt11, str(invoice.payment_hash), amount_msat // MSAT_PER_SAT, expires_at)

    # --- HTTP, https only and to public addresses -------------------------------------------

    def _local(self, host: str) -> bool:
        return self.allow_local and host in LOCAL_HOSTS

    def _url(self, url: str) -> str | None:
        """Check `url` may be called; the address to pin the connection to (None: a local test host)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if self._local(host) and parts.scheme in ("http", "https"):
            return None
        if parts.scheme != "https" or not host:
            raise LnurlRefused(f"LNURL URLs must be https, not {url[:100]!r}")
        try:
            infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
        except OSError as error:
            raise LnurlUnreachable(f"{host} does not resolve: {error}") from error
        addresses = [str(info[4][0]) for info in infos]
        if not addresses or not all(ipaddress.ip_address(a).is_global for a in addresses):
            raise LnurlRefused(f"{host} resolves to a non-public address; refused")
        return addresses[0]

    def _get_json(self, url: str) -> dict[str, Any]:
        pinned = self._url(url)
        try:
            answer = exchange(
                "GET",
                url,
                headers={"Accept": "application/json", "User-Agent": "timmy-lnurl/1"},
                timeout_seconds=self.timeout_seconds,
                body_bytes_max=ANSWER_BYTES_MAX,
                connect_to=pinned,
            )
        except (HttpTimedOut, HttpUnreachable) as error:
            raise LnurlUnreachable(str(error)) from error
        except HttpAnswerTooLarge as error:
            raise LnurlRefused(str(error)) from error
        if answer.status >= 500:
            raise LnurlUnreachable(f"{url[:100]} answered HTTP {answer.status}")
        data = answer.json_object()
        if data is not None and str(data.get("status", "")).upper() == "ERROR":
            raise LnurlRefused(f"the LNURL service refused: {str(data.get('reason', ''))[:200]}")
        if answer.status != 200 or data is None:
            raise LnurlRefused(f"{url[:100]} answered HTTP {answer.status}, not an LNURL JSON object")
        return data
