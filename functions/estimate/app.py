"""Advisory price estimates, the public view of the generosity pool, and donations to it.
Nothing here debits: a donation only issues an invoice; the settlement credits the pool once paid."""

from __future__ import annotations

from typing import Annotated, Any

from timmy_http.app import create_app, lambda_handler_for
from timmy_http.caller import optional_caller, public_base_url
from timmy_http.estimate import (
    DonationAnswer,
    DonationBody,
    EstimateAnswer,
    EstimateBody,
    check_query_encoding,
    donation_answer,
    estimate,
    pool,
)
from timmy_http.event_handler import Body, OpenAPIResponse, Query, Response, content_types
from timmy_http.idempotency import idempotent
from timmy_http.pool import PoolView
from timmy_http.services import services
from timmy_http.work_fields import MAX_OUTPUT_TOKENS_DESCRIPTION, MODEL_SCHEMA, OUTPUT_TOKENS_MAX, REQUEST_SCHEMA

app = create_app()

_ESTIMATE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: {"description": "the estimate", "content": {"application/json": {"model": EstimateAnswer}}},
    400: {"description": "invalid input: the message says what to fix"},
    401: {"description": "the credentials sent are invalid"},
    413: {"description": "the request is over the size limit or the model's context window"},
    503: {"description": "no fresh BTC/USD price (price_unavailable)"},
}


@app.get("/api/estimate", summary="Price a request (upper bound, in sats) without paying", responses=_ESTIMATE_RESPONSES)
def get_estimate(
    request: Annotated[str, Query(json_schema_extra=REQUEST_SCHEMA)],
    model: Annotated[str | None, Query(json_schema_extra=MODEL_SCHEMA)] = None,
    max_output_tokens: Annotated[int | None, Query(ge=1, le=OUTPUT_TOKENS_MAX, description=MAX_OUTPUT_TOKENS_DESCRIPTION)] = None,
    nostr_token: Annotated[str | None, Query(description="a nostr_token, instead of the Authorization header")] = None,
) -> dict[str, Any]:
    check_query_encoding(app.current_event.raw_event.get("rawQueryString") or "")
    caller = optional_caller(app, allow_query_token=True)
    return estimate(request, model, max_output_tokens, caller)


@app.post("/api/estimate", summary="Price a long request (JSON body) without paying", responses=_ESTIMATE_RESPONSES)
def post_estimate(body: Annotated[EstimateBody, Body()]) -> dict[str, Any]:
    caller = optional_caller(app, allow_query_token=True)
    return estimate(body.request, body.model, body.max_output_tokens, caller)


@app.get("/api/pool", summary="The generosity pool: balance, reservations, today's grants and credits")
def get_pool() -> PoolView:
    return pool()


@app.post(
    "/api/pool/donations",
    summary="Donate to the generosity pool: an invoice; once paid, the pool grows by its amount",
    responses={
        201: {"description": "the donation's invoice", "content": {"application/json": {"model": DonationAnswer}}},
        400: {"description": "invalid input: amount_sats is 1 … DONATION_MAX_SATS"},
        409: {"description": "the Idempotency-Key was used with another body, or its first request is still running"},
        503: {"description": "the Lightning backend is unavailable"},
    },
)
def post_donation(body: Annotated[DonationBody, Body()]) -> Any:
    def compute() -> Response:
        donation = services().donations.create(body.amount_sats, body.note, public_base_url(app))
        return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=donation_answer(donation))

    return idempotent(app, "pool-donation", compute)


lambda_handler = lambda_handler_for(app)
