"""Development routes of the simulated Lightning backend (`LIGHTNING_BACKEND=simulated` only; the
template deploys this function only then): pay an invoice as a wallet would, list what the node
knows, and settle a payout left in flight. Contract section 5."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from timmy.adapters.lightning_simulated import BEHAVIOURS, SimulatedLightning
from timmy.errors import Conflict, InvalidInput, NotFound
from timmy.ports.lightning import LightningError
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.services import services

app = create_app()


def _node() -> SimulatedLightning:
    lightning = services().lightning
    if not isinstance(lightning, SimulatedLightning):
        raise NotFound("the dev routes exist only with LIGHTNING_BACKEND=simulated", code="not_found")
    return lightning


class PayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bolt11: StrictStr | None = Field(default=None, min_length=1, max_length=2000, description="the invoice to pay")
    payment_hash: StrictStr | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="or its payment hash")
    amount_sats: StrictInt | None = Field(default=None, ge=1, description="what the payer sends; the invoice's amount when absent")


class WalletInvoiceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_sats: StrictInt = Field(ge=1, le=2_100_000_000_000_000)
    memo: StrictStr = Field(default="a payout", max_length=200)
    behaviour: StrictStr = Field(default="succeed", description=f"how paying it goes: {', '.join(BEHAVIOURS)}")


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_hash: StrictStr = Field(pattern=r"^[0-9a-f]{64}$")
    succeed: StrictBool


@app.post("/dev/lightning/pay", summary="Pay one of Timmy's invoices as a wallet would; the webhook fires")
def pay(body: PayBody) -> dict[str, Any]:
    if (body.bolt11 is None) == (body.payment_hash is None):
        raise InvalidInput("send either bolt11 or payment_hash", code="invalid_input")
    try:
        invoice = _node().settle(body.bolt11 or body.payment_hash or "", body.amount_sats)
    except LightningError as error:
        raise Conflict(str(error), code="not_payable") from None
    return {"payment_hash": invoice.payment_hash, "amount_sats": invoice.amount_sats, "paid_sats": invoice.received_sats, "status": "paid"}


@app.get("/dev/lightning/invoices", summary="Every invoice and payout the simulated node knows, newest first")
def listing() -> dict[str, Any]:
    return _node().listing()


@app.post("/dev/lightning/invoices", summary="An invoice of an outside wallet, for payouts to pay (behaviour: how paying it goes)")
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
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=answer)


@app.post("/dev/lightning/payouts/resolve", summary="Give a payout left in flight its final outcome (the sweeper then records it)")
def resolve(body: ResolveBody) -> dict[str, Any]:
    try:
        payment = _node().resolve_payment(body.payment_hash, body.succeed)
    except LightningError as error:
        raise NotFound(str(error), code="not_found") from None
    return {"payment_hash": payment.payment_hash, "state": payment.state.value}


lambda_handler = lambda_handler_for(app)
