"""`POST /api/webhooks/lightning`: the backend's payment notifications. Answers fast and books
nothing: it checks the URL's token (cheap refusal of forged traffic), reads the payment hash the
notification names, and enqueues it to the settlement queue, which confirms the payment with the
backend's authenticated API before booking (contract sections 5 and 6)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from timmy.errors import InvalidInput, Unauthorized, Unavailable
from timmy.messages import INVOICE_NOTIFIED
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.event_handler import Response, content_types
from timmy_http.services import services

app = create_app()


class Accepted(BaseModel):
    accepted: bool


@app.post(
    "/api/webhooks/lightning",
    summary="A payment notification from the Lightning backend (queued; confirmed with the backend before booking)",
    responses={
        202: {"description": "queued for settlement", "content": {"application/json": {"model": Accepted}}},
        400: {"description": "the notification names no payment hash (invalid_notification)"},
        401: {"description": "the URL's owner token is missing or wrong (invalid_webhook_token)"},
        503: {"description": "the settlement queue is not configured"},
    },
)
def lightning_webhook() -> Any:
    event = app.current_event
    query: dict[str, Any] = dict(event.query_string_parameters or {})
    owner, token = query.get("owner") or "", query.get("token") or ""
    svc = services()
    if not owner or not token or not svc.invoices.webhook_token_valid(owner, token):
        raise Unauthorized("the webhook URL's token is missing or wrong", code="invalid_webhook_token")
    payment_hash = svc.lightning.notified_hash(event.body or "", dict(event.headers), query)
    if payment_hash is None:
        raise InvalidInput("the notification names no payment hash", code="invalid_notification")
    if not svc.settlement_queue.configured:
        raise Unavailable("the settlement queue is not configured", code="queue_unavailable")
    svc.settlement_queue.send({"type": INVOICE_NOTIFIED, "payment_hash": payment_hash, "owner": owner})
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body={"accepted": True})


lambda_handler = lambda_handler_for(app)
