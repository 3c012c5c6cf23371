"""The session routes (contract section 5): a prepaid balance, synchronous requests held on it,
top-ups and close. Every route but the creation needs the session's token (`X-Session-Token`, or
`Authorization: Bearer st_…`). The use case is `timmy.sessions.service.Sessions`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from timmy.config import get_settings
from timmy.money import SATS_MAX
from timmy_http.answers import Answer, documented, shaped
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.caller import optional_caller, public_base_url
from timmy_http.event_handler import Body, Path, Response, content_types
from timmy_http.fields import INTEGRAL, RefundAddress, maximum_from_settings
from timmy_http.idempotency import callers_scope, idempotent
from timmy_http.invoices import InvoiceView, PayoutView, invoice_view, payout_view
from timmy_http.openapi import errors
from timmy_http.services import services
from timmy_http.work_fields import MAX_OUTPUT_TOKENS_DESCRIPTION, FreeTierView, MaxOutputTokens, ModelName, RequestText

if TYPE_CHECKING:
    from timmy.payments.model import PayoutRecord
    from timmy.sessions.service import Session

app = create_app()
SessionId = Annotated[str, Path(description="the session_id POST /api/sessions answered")]
_SESSION_SATS_MAX = maximum_from_settings(lambda: min(get_settings().session_max_sats, SATS_MAX))
SessionSats = Annotated[StrictInt, Field(ge=1), INTEGRAL]


class SessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    amount_sats: SessionSats = Field(
        description="the first payment into the balance, 1 … SESSION_MAX_SATS", json_schema_extra=_SESSION_SATS_MAX
    )
    refund_address: RefundAddress | None = None


class TopupBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    amount_sats: SessionSats = Field(description="sats to add, 1 … SESSION_MAX_SATS", json_schema_extra=_SESSION_SATS_MAX)


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    # The same fields as the estimate's, defined once (timmy_http.work_fields).
    request: RequestText
    model: ModelName | None = None
    max_output_tokens: MaxOutputTokens | None = Field(default=None, description=MAX_OUTPUT_TOKENS_DESCRIPTION)


class CloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    invoice: StrictStr | None = Field(default=None, min_length=1, max_length=2000, description="a BOLT11 invoice for exactly the balance")


def _session(session_id: str) -> Session:
    headers = app.current_event.headers
    token = headers.get("x-session-token")
    if token is None:  # or 'Authorization: Bearer st_…' (the use case refuses any other token)
        scheme, _, value = (headers.get("authorization") or "").partition(" ")
        token = value.strip() if scheme.lower() == "bearer" else None
    return services().sessions.authorize(session_id, token)


class SessionTotals(Answer):
    topped_up_sats: int
    charged_sats: int
    absorbed_sats: int
    refunded_sats: int
    requests: int


class SessionAnswer(Answer):
    session_id: str
    status: str = Field(description="awaiting_payment | active | closing | closed | expired")
    balance_sats: int = Field(description="posted sats in the balance")
    held_sats: int = Field(description="held by requests in flight")
    available_sats: int = Field(description="what a request may still hold")
    pubkey: str | None = Field(description="the identity bound at creation; null when anonymous")
    refund_address: str | None
    totals: SessionTotals
    payout: PayoutView | None = Field(
        description="the last close's payout of the balance: pending (the node has not said yet), paid or failed; null before any"
    )


class CreatedSession(SessionAnswer):
    session_token: str = Field(description="shown once: send it as 'X-Session-Token' on every other session route")
    invoice: InvoiceView


class SessionTopupAnswer(Answer):
    session_id: str
    invoice: InvoiceView


class RequestAnswer(Answer):
    result: str
    charged_sats: int
    absorbed_sats: int
    free_tier: FreeTierView
    balance_sats: int


class ClosedSession(SessionAnswer):
    payout: PayoutView | None = Field(
        description=(
            "the balance's payout: this close's, or, when nothing was left to pay, the one an earlier close made "
            "(pending, paid or failed; never paid twice); null when there was none"
        )
    )


def _body(view: dict[str, Any], payout: PayoutRecord | None) -> dict[str, Any]:
    return {**view, "payout": payout_view(payout) if payout else None}


def _json(status: int, model: type[Answer], body: dict[str, Any]) -> Any:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=shaped(model, body))


_AUTH = {401: {"description": "the session token is missing or not this session's (invalid_session_token)"}}


@app.post(
    "/api/sessions",
    summary="Open a session: a token (shown once) and the invoice of its first payment",
    responses={
        201: documented(CreatedSession, "awaiting_payment: pay the invoice"),
        400: {"description": "invalid input"},
        401: {"description": "bad identity credentials"},
    },
    openapi_extensions=errors(409),
)
def create_session(body: Annotated[SessionBody, Body()]) -> Any:
    caller = optional_caller(app)

    def compute() -> Any:
        sessions = services().sessions
        session, token, invoice = sessions.create(caller, body.amount_sats, body.refund_address, public_base_url(app))
        view = sessions.view(session)
        return _json(201, CreatedSession, {**_body(view, view["payout"]), "session_token": token, "invoice": invoice_view(invoice)})

    return idempotent(app, callers_scope(app, "sessions", caller.pubkey if caller else None), compute)


@app.get(
    "/api/sessions/<session_id>",
    summary="A session's status, balance, holds and totals",
    responses={200: documented(SessionAnswer, "the session"), **_AUTH},
)
def get_session(session_id: SessionId) -> dict[str, Any]:
    view = services().sessions.view(_session(session_id))
    return shaped(SessionAnswer, _body(view, view["payout"]))


@app.post(
    "/api/sessions/<session_id>/topup",
    summary="An invoice that adds to the balance",
    responses={201: documented(SessionTopupAnswer, "the invoice"), 409: {"description": "the session is closed"}, **_AUTH},
)
def topup_session(session_id: SessionId, body: Annotated[TopupBody, Body()]) -> Any:
    session = _session(session_id)

    def compute() -> Any:
        invoice = services().sessions.topup(session, body.amount_sats)
        return _json(201, SessionTopupAnswer, {"session_id": session.session_id, "invoice": invoice_view(invoice)})

    return idempotent(app, f"session-topup:{session.session_id}", compute)


@app.post(
    "/api/sessions/<session_id>/request",
    summary="Run a request on the session: held, worked, reconciled; the result and what it cost",
    responses={
        200: documented(RequestAnswer, "the result and what it cost"),
        402: {"description": "the balance cannot hold the estimate (insufficient_balance): the shortfall and a top-up invoice for it"},
        409: {"description": "the session is not active"},
        413: {"description": "the request is over the size or token limits"},
        422: {"description": "the evaluator rejected the request"},
        503: {"description": "the work failed (nothing charged) or a dependency is unavailable"},
        **_AUTH,
    },
)
def session_request(session_id: SessionId, body: Annotated[RequestBody, Body()]) -> Any:
    session = _session(session_id)

    def compute() -> Any:
        outcome = services().sessions.request(session, body.request, body.model, body.max_output_tokens)
        return _json(
            200,
            RequestAnswer,
            {
                "result": outcome.result,
                "charged_sats": outcome.charged_sats,
                "absorbed_sats": outcome.absorbed_sats,
                "free_tier": outcome.free_tier,
                "balance_sats": outcome.balance_sats,
            },
        )

    return idempotent(app, f"session-request:{session.session_id}", compute)


@app.post(
    "/api/sessions/<session_id>/close",
    summary="Close the session: the remaining balance paid out once (to the invoice, or the refund address)",
    responses={
        200: documented(ClosedSession, "closed; the balance's payout (this close's or an earlier one's), if any"),
        400: {"description": "no invoice (and no refund address), or an invoice not for exactly the balance"},
        409: {"description": "requests are still running (requests_in_flight), or the invoice was used before (invoice_already_used)"},
        **_AUTH,
    },
)
def close_session(session_id: SessionId, body: Annotated[CloseBody | None, Body()] = None) -> dict[str, Any]:
    session = _session(session_id)  # no body: no invoice (a session with a refund address, or nothing left to pay)
    view, payout = services().sessions.close(session, body.invoice if body is not None else None)
    return shaped(ClosedSession, _body(view, payout))


lambda_handler = lambda_handler_for(app)
