"""Development routes of the simulated Lightning backend (`LIGHTNING_BACKEND=simulated` only; the
template deploys this function only then): pay an invoice as a wallet would, list what the node
knows, and settle a payout left in flight. Contract section 5."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, WithJsonSchema

from timmy.adapters.lightning_simulated import BEHAVIOURS, SimulatedLightning, UnknownInvoice
from timmy.errors import Conflict, InvalidInput, NotFound
from timmy.ports.lightning import LightningError
from timmy_http.answers import Answer, documented, shaped
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.event_handler import Response, content_types
from timmy_http.fields import INTEGRAL, NOT_NULL
from timmy_http.openapi import errors
from timmy_http.services import services

app = create_app()


def _node() -> SimulatedLightning:
    lightning = services().lightning
    if not isinstance(lightning, SimulatedLightning):
        raise NotFound("the dev routes exist only with LIGHTNING_BACKEND=simulated", code="not_found")
    return lightning


HASH_PATTERN = "^[0-9a-f]{64}$"
SATS_SPEC_MAX = 2_100_000_000_000_000


class PayBody(BaseModel):
    # Exactly one of bolt11 and payment_hash (the spec's oneOf); a null is refused, never taken as absent.
    model_config = ConfigDict(
        extra="forbid", defer_build=True, json_schema_extra={"oneOf": [{"required": ["bolt11"]}, {"required": ["payment_hash"]}]}
    )

    bolt11: Annotated[
        Annotated[StrictStr, Field(min_length=1, max_length=2000)] | None,
        NOT_NULL,
        WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 2000, "description": "the invoice to pay"}),
    ] = None
    payment_hash: Annotated[
        Annotated[StrictStr, Field(pattern=HASH_PATTERN)] | None,
        NOT_NULL,
        WithJsonSchema({"type": "string", "pattern": HASH_PATTERN, "description": "or its payment hash"}),
    ] = None
    amount_sats: Annotated[
        Annotated[StrictInt, Field(ge=1, le=SATS_SPEC_MAX), INTEGRAL] | None,
        NOT_NULL,
        WithJsonSchema({"type": "integer", "minimum": 1, "maximum": SATS_SPEC_MAX, "description": "what the payer sends; else the amount"}),
    ] = None


class WalletInvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    amount_sats: Annotated[StrictInt, Field(ge=1, le=SATS_SPEC_MAX), INTEGRAL]
    memo: StrictStr = Field(default="a payout", max_length=200)
    behaviour: Annotated[StrictStr, WithJsonSchema({"type": "string", "enum": list(BEHAVIOURS), "description": "how paying it goes"})] = (
        "succeed"
    )


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    payment_hash: StrictStr = Field(pattern=HASH_PATTERN)
    succeed: StrictBool


Seconds = int | float  # as the node stores an instant (an int stays an int)


class PaidAnswer(Answer):
    payment_hash: str
    amount_sats: int
    paid_sats: int = Field(description="what the wallet sent")
    status: str


class NodeInvoice(Answer):
    payment_hash: str
    bolt11: str
    amount_sats: int
    memo: str
    owner: str
    webhook_url: str = Field(description="without its query (the token)")
    created_at: Seconds
    expires_at: Seconds
    state: str = Field(description="pending | paid | expired")
    received_sats: int
    paid_at: Seconds | None
    wallet: bool = Field(description="an outside wallet's invoice (for payouts), not Timmy's")
    behaviour: str


class NodePayment(Answer):
    payment_hash: str
    bolt11: str
    amount_sats: int
    fee_sats: int
    state: str
    failure_reason: str | None
    created_at: Seconds


class Listing(Answer):
    invoices: list[NodeInvoice]
    payouts: list[NodePayment]


class WalletInvoice(Answer):
    bolt11: str
    payment_hash: str
    amount_sats: int
    expires_at: Seconds


class Resolved(Answer):
    payment_hash: str
    state: str


@app.post(
    "/dev/lightning/pay",
    summary="Pay one of Timmy's invoices as a wallet would; the webhook fires",
    responses={200: documented(PaidAnswer, "paid")},
    openapi_extensions=errors(404, 409),
)
def pay(body: PayBody) -> dict[str, Any]:
    if (body.bolt11 is None) == (body.payment_hash is None):
        raise InvalidInput("send either bolt11 or payment_hash", code="invalid_input")
    try:
        invoice = _node().settle(body.bolt11 or body.payment_hash or "", body.amount_sats)
    except UnknownInvoice as error:
        raise NotFound(str(error), code="invoice_not_found") from None
    except LightningError as error:  # paid already, expired, too little sent: the invoice's state refuses it
        raise Conflict(str(error), code="not_payable") from None
    answer = {
        "payment_hash": invoice.payment_hash,
        "amount_sats": invoice.amount_sats,
        "paid_sats": invoice.received_sats,
        "status": "paid",
    }
    return shaped(PaidAnswer, answer)


@app.get(
    "/dev/lightning/invoices",
    summary="Every invoice and payout the simulated node knows, newest first",
    responses={200: documented(Listing, "the node's invoices and payouts")},
    openapi_extensions=errors(404),
)
def listing() -> dict[str, Any]:
    return shaped(Listing, _node().listing())


@app.post(
    "/dev/lightning/invoices",
    summary="An invoice of an outside wallet, for payouts to pay (behaviour: how paying it goes)",
    responses={201: documented(WalletInvoice, "the wallet's invoice")},
    openapi_extensions=errors(404),
)
def wallet_invoice(body: WalletInvoiceBody) -> Any:
    if body.behaviour not in BEHAVIOURS:
        raise InvalidInput(f"behaviour is one of {', '.join(BEHAVIOURS)}", code="invalid_input")
    invoice = _node().wallet_invoice(body.amount_sats, body.memo, body.behaviour)
    answer = {
        "bolt11": invoice.bolt11,
        "payment_hash": invoice.payment_hash,
        "amount_sats": invoice.amount_sats,
        "expires_at": invoice.expires_at,
    }
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=shaped(WalletInvoice, answer))


@app.post(
    "/dev/lightning/payouts/resolve",
    summary="Give a payout left in flight its final outcome (the sweeper then records it)",
    responses={200: documented(Resolved, "the payment's new state")},
    openapi_extensions=errors(404),
)
def resolve(body: ResolveBody) -> dict[str, Any]:
    try:
        payment = _node().resolve_payment(body.payment_hash, body.succeed)
    except LightningError as error:
        raise NotFound(str(error), code="not_found") from None
    return shaped(Resolved, {"payment_hash": payment.payment_hash, "state": payment.state.value})


lambda_handler = lambda_handler_for(app)
