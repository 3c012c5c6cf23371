"""Lightning settlement on DynamoDB Local and moto's SQS: a simulated node whose notifications the
test delivers to the webhook route itself (so it can drop, repeat or forge them), the template's
queues, and the settlement function fed by the local poller one batch at a time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from local.handlers import HandlerLoader
from local.poller import EventSourceMapping, Poller, mappings_from
from local.sqs import LocalSQS
from tests.api_client import Answer, ApiClient
from timmy.adapters.lightning_simulated import SimulatedLightning
from timmy.clock import FixedClock
from timmy.config import get_settings
from timmy_http.services import Services, reset_services


@dataclass
class Notification:
    url: str
    body: bytes

    @property
    def target(self) -> str:
        parts = urlsplit(self.url)
        return f"{parts.path}?{parts.query}"


@dataclass
class Lab:
    services: Services
    api: ApiClient
    node: SimulatedLightning
    clock: FixedClock
    sqs: LocalSQS
    poller: Poller
    mapping: EventSourceMapping
    work: EventSourceMapping
    sent: list[Notification] = field(default_factory=list)

    def donate(self, amount_sats: int) -> dict[str, object]:
        answer = self.api.post("/api/pool/donations", json_body={"amount_sats": amount_sats})
        assert answer.status == 201, answer.body
        return dict(answer.json)

    def deliver(self, notification: Notification) -> Answer:
        return self.api.post(notification.target, body=notification.body)

    def settle_queue(self, rounds_max: int = 20) -> int:
        """Deliver the settlement queue's messages until none is visible; how many were delivered."""
        delivered = 0
        for _ in range(rounds_max):
            got = self.poller.poll_once(self.mapping)
            if not got:
                return delivered
            delivered += got
        return delivered

    def run_work(self, rounds_max: int = 20) -> int:
        """Deliver the work queue's messages (the worker) until none is visible."""
        delivered = 0
        for _ in range(rounds_max):
            got = self.poller.poll_once(self.work)
            if not got:
                return delivered
            delivered += got
        return delivered

    def pay_and_settle(self, payment_hash: str, amount_sats: int | None = None) -> None:
        """A wallet pays; its notification reaches the webhook; settlement and then the worker run."""
        self.node.settle(payment_hash, amount_sats)
        for notification in self.sent[:]:
            self.deliver(notification)
        self.sent.clear()
        self.settle_queue()
        self.run_work()

    def bearer(self, pubkey: str, tier: str) -> dict[str, str]:
        """`pubkey` pinned to `tier` by the operator, and its nostr_token as a bearer header."""
        admin = {"authorization": "Bearer test-admin-key"}
        assert self.api.put(f"/api/admin/identities/{pubkey}", json_body={"tier": tier}, headers=admin).status == 200
        return {"authorization": f"Bearer {self.services.identity.issue_token(pubkey).token}"}

    def pool_sats(self) -> int:
        """The pool's balance as `GET /api/pool` shows it (the first read seeds the pool)."""
        return int(self.api.get("/api/pool").json["balance_sats"])


@pytest.fixture
def lab(table_name: str, local_sqs: LocalSQS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Lab]:
    for name, value in local_sqs.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LIGHTNING_BACKEND", "simulated")
    get_settings.cache_clear()
    clock = FixedClock(time.time())
    services = Services(get_settings(), clock)
    sent: list[Notification] = []
    node = SimulatedLightning(tmp_path / "node", clock, notify=lambda url, body: sent.append(Notification(url, body)))
    services.__dict__["lightning"] = node  # the cached property, injected
    reset_services(services)
    loader = HandlerLoader(watch=False)
    mappings = {m.queue: replace(m, batching_window_seconds=0) for m in mappings_from(loader)}
    poller = Poller(local_sqs, loader, mappings=list(mappings.values()))
    try:
        yield Lab(services, ApiClient(), node, clock, local_sqs, poller, mappings["SettlementQueue"], mappings["WorkQueue"], sent)
    finally:
        reset_services()
