"""The estimate and pool routes' HTTP models, and the mapping of the use case's outcome onto them.

The use case is `timmy.estimate`. Kept beside the HTTP glue (not in functions/estimate/) because
the meta function loads every app.py to merge the OpenAPI spec, and the models must import the
same way from both.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from timmy.errors import InvalidInput
from timmy.free_tier import PoolStatus
from timmy.identity.caller import Caller
from timmy.payments.donations import NOTE_CHARS_MAX, Donation
from timmy.payments.model import InvoiceRecord
from timmy_http.services import services


class EstimateBody(BaseModel):
    """`POST /api/estimate`: the same fields as the query of `GET /api/estimate`, for long requests."""

    model_config = ConfigDict(extra="forbid")

    request: StrictStr = Field(description="the text of the work to price")
    model: StrictStr | None = Field(default=None, description="a catalogue model name; the default model when absent")
    max_output_tokens: StrictInt | None = Field(
        default=None, description="completion cap, 1 … the model's maximum; the model's default when absent"
    )


class TokenEstimate(BaseModel):
    input: int = Field(description="upper bound of the input tokens")
    output: int = Field(description="the completion cap: upper bound of the output tokens")


class PoolSummary(BaseModel):
    balance_sats: int
    daily_budgets: dict[str, int]


class FreeTierView(BaseModel):
    serve: str = Field(description="free | partial | gate")
    absorb_sats: int
    charge_sats: int


class IdentityView(BaseModel):
    pubkey: str
    tier: str
    free_tier: FreeTierView


class EstimateAnswer(BaseModel):
    estimated_sats: int = Field(description="upper bound of the work's price; nothing is debited")
    btc_price_usd: str = Field(description="the BTC/USD price used, a decimal string")
    token_estimate: TokenEstimate
    model: str
    pool: PoolSummary
    identity: IdentityView | None = Field(default=None, description="present when the request carried a valid identity")


class DonationBody(BaseModel):
    """`POST /api/pool/donations`."""

    model_config = ConfigDict(extra="forbid")

    amount_sats: StrictInt = Field(ge=1, description="whole sats to donate, 1 … DONATION_MAX_SATS")
    note: StrictStr | None = Field(default=None, max_length=NOTE_CHARS_MAX, description="a word for the operator")


class InvoiceView(BaseModel):
    bolt11: str
    payment_hash: str
    amount_sats: int
    expires_at: int = Field(description="epoch seconds: the invoice cannot be paid after")


class DonationAnswer(BaseModel):
    donation_id: str
    amount_sats: int
    status: str = Field(description="awaiting_payment: pay the invoice; the pool is credited once it is paid")
    invoice: InvoiceView


def invoice_view(invoice: InvoiceRecord) -> dict[str, Any]:
    return {
        "bolt11": invoice.bolt11,
        "payment_hash": invoice.payment_hash,
        "amount_sats": invoice.amount_sats,
        "expires_at": int(invoice.expires_at),
    }


def donation_answer(donation: Donation) -> dict[str, Any]:
    return {
        "donation_id": donation.donation_id,
        "amount_sats": donation.amount_sats,
        "status": "awaiting_payment",
        "invoice": invoice_view(donation.invoice),
    }


def check_query_encoding(raw_query: str) -> None:
    """A 400 when a percent-encoded query value is not UTF-8 (API Gateway passes such bytes on)."""
    for part in raw_query.split("&"):
        name, _, value = part.partition("=")
        try:
            unquote_to_bytes(value.replace("+", " ")).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(
                f"the query parameter {name!r} is not valid UTF-8 once percent-decoded: encode the text as UTF-8", code="invalid_encoding"
            ) from None


def estimate(request: str | None, model: str | None, max_output_tokens: int | None, caller: Caller | None) -> dict[str, Any]:
    """The estimate answer of `GET` and `POST /api/estimate`."""
    outcome = services().estimate.estimate(request, model, max_output_tokens, caller)
    quote, decision, pool = outcome.quote, outcome.decision, outcome.pool
    answer = EstimateAnswer(
        estimated_sats=quote.sats,
        btc_price_usd=format(quote.btc_price_usd, "f"),  # never exponent notation ("1E+5")
        token_estimate=TokenEstimate(input=quote.input_tokens, output=quote.output_tokens),
        model=quote.model,
        pool=PoolSummary(balance_sats=pool.balance_sats, daily_budgets=pool.daily_budgets),
    )
    if caller is not None:
        free_tier = FreeTierView(serve=decision.serve, absorb_sats=decision.absorb_sats, charge_sats=decision.charge_sats)
        answer.identity = IdentityView(pubkey=caller.pubkey, tier=decision.tier, free_tier=free_tier)
    return answer.model_dump(exclude_none=True)


def pool() -> PoolStatus:
    """The public view of the generosity pool."""
    return services().estimate.pool()
