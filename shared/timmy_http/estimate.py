"""The estimate and pool routes' HTTP models, and the mapping of the use case's outcome onto them.

The use case is `timmy.estimate`. Kept beside the HTTP glue (not in functions/estimate/) because
the meta function loads every app.py to merge the OpenAPI spec, and the models must import the
same way from both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from timmy.config import get_settings
from timmy.errors import InvalidInput
from timmy.identity.caller import Caller
from timmy.money import SATS_MAX
from timmy.payments import NOTE_CHARS_MAX
from timmy_http.fields import INTEGRAL, maximum_from_settings
from timmy_http.invoices import InvoiceView, invoice_view
from timmy_http.pool import PoolView
from timmy_http.services import services
from timmy_http.work_fields import MAX_OUTPUT_TOKENS_DESCRIPTION, FreeTierView, MaxOutputTokens, ModelName, RequestText

if TYPE_CHECKING:
    from timmy.payments.donations import Donation  # the donation route's use case: imported when it runs


class EstimateBody(BaseModel):
    """`POST /api/estimate`: the same fields as the query of `GET /api/estimate`, for long requests."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    request: RequestText
    model: ModelName | None = None
    max_output_tokens: MaxOutputTokens | None = Field(default=None, description=MAX_OUTPUT_TOKENS_DESCRIPTION)


class TokenEstimate(BaseModel):
    input: int = Field(description="upper bound of the input tokens")
    output: int = Field(description="the completion cap: upper bound of the output tokens")


class PoolSummary(BaseModel):
    balance_sats: int
    daily_budgets: dict[str, int]


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


_donation_maximum = maximum_from_settings(lambda: min(get_settings().donation_max_sats, SATS_MAX))


class DonationBody(BaseModel):
    """`POST /api/pool/donations`."""

    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    amount_sats: Annotated[StrictInt, Field(ge=1), INTEGRAL] = Field(
        description="whole sats to donate, 1 … DONATION_MAX_SATS", json_schema_extra=_donation_maximum
    )
    note: StrictStr | None = Field(default=None, max_length=NOTE_CHARS_MAX, description="a word for the operator")


class DonationAnswer(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built by the donation route, not by every cold start

    donation_id: str
    amount_sats: int
    status: str = Field(description="awaiting_payment: pay the invoice; the pool is credited once it is paid")
    invoice: InvoiceView


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


def pool() -> PoolView:
    """The public view of the generosity pool."""
    return PoolView.of(services().estimate.pool())
