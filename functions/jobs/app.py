"""The jobs routes (contract section 5): create a job (eval → decide → free or an invoice), read
its status and receipt, claim its refund. The use case is `timmy.jobs.service.Jobs`."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from timmy_http.answers import Answer, documented, shaped
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.caller import optional_caller, public_base_url
from timmy_http.event_handler import Body, Path, Response, content_types
from timmy_http.fields import RefundAddress
from timmy_http.idempotency import callers_scope, idempotent
from timmy_http.invoices import InvoiceView, PayoutView, invoice_view, payout_view
from timmy_http.openapi import errors
from timmy_http.services import services
from timmy_http.work_fields import MAX_OUTPUT_TOKENS_DESCRIPTION, FreeTierView, MaxOutputTokens, ModelName, RequestText

app = create_app()


class JobBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    # The same fields as the estimate's, defined once (timmy_http.work_fields).
    request: RequestText
    model: ModelName | None = None
    max_output_tokens: MaxOutputTokens | None = Field(default=None, description=MAX_OUTPUT_TOKENS_DESCRIPTION)
    refund_address: RefundAddress | None = None


class RefundBody(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # built by its route on first use, not by every cold start

    invoice: StrictStr = Field(min_length=1, max_length=2000, description="a BOLT11 invoice for exactly refundable_sats")


class Receipt(Answer):
    quoted_sats: int
    paid_sats: int = Field(description="every invoice's booking, excess included")
    absorbed_sats: int
    charged_sats: int
    eval_fee_sats: int
    refunded_sats: int
    transfer_ids: list[str] = Field(description="the ledger transfers these figures sum")


class JobAnswer(Answer):
    job_id: str
    status: str = Field(
        description="awaiting_eval_payment | awaiting_payment | awaiting_topup | executing | complete | failed | rejected | expired"
    )
    model: str
    free_tier: FreeTierView = Field(description="the decision at creation")
    absorbed_sats: int
    charged_sats: int
    refundable_sats: int
    refund_status: str = Field(description="none | claimable | pending | paid | failed")
    receipt: Receipt
    result: str | None = Field(default=None, description="present once complete")
    failure: str | None = Field(default=None, description="present when the work failed")
    invoice: InvoiceView | None = Field(
        default=None, description="while the job awaits a payment (the eval fee's, the work's or the shortfall's): the invoice to pay"
    )


class CreatedJob(JobAnswer):
    invoice: InvoiceView = Field(description="what to pay (partial and gate)")


class RefundAnswer(JobAnswer):
    payout: PayoutView


def _json(status: int, model: type[Answer], body: dict[str, Any]) -> Any:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=shaped(model, body))


@app.post(
    "/api/jobs",
    summary="Create a job: free (202, executing) or an invoice to pay (201, awaiting_payment)",
    responses={
        201: documented(CreatedJob, "awaiting_payment: pay the invoice"),
        202: documented(JobAnswer, "executing: the pool pays for it"),
        400: {"description": "invalid input"},
        401: {"description": "the credentials sent are invalid"},
        409: {"description": "the Idempotency-Key was used with another body, or its request is still running"},
        413: {"description": "the request is over the size or token limits"},
        422: {"description": "the evaluator rejected the request"},
        429: {"description": "too many unpaid jobs open (too_many_unpaid_jobs)"},
        503: {"description": "no BTC/USD price, or the Lightning backend is unavailable"},
    },
)
def create_job(body: Annotated[JobBody, Body()]) -> Any:
    caller = optional_caller(app, allow_query_token=True)

    def compute() -> Any:
        jobs = services().jobs
        source = app.current_event.request_context.http.source_ip
        job, invoice = jobs.create(
            caller, body.request, body.model, body.max_output_tokens, body.refund_address, public_base_url(app), source=source
        )
        answer = jobs.view(job, new=True)  # nothing paid yet: no reads for the receipt
        if invoice is None:
            return _json(202, JobAnswer, answer)
        return _json(201, CreatedJob, {**answer, "invoice": invoice_view(invoice)})

    return idempotent(app, callers_scope(app, "jobs", caller.pubkey if caller else None), compute)


@app.get(
    "/api/jobs/<job_id>",
    summary="A job's status, result and receipt; while it awaits a payment, the invoice to pay",
    responses={200: documented(JobAnswer, "the job")},
    openapi_extensions=errors(404),
)
def get_job(job_id: Annotated[str, Path(description="the job_id POST /api/jobs answered")]) -> dict[str, Any]:
    jobs = services().jobs
    job = jobs.require(job_id)
    invoice = jobs.awaited_invoice(job)  # awaiting_eval_payment → the work's invoice, awaiting_topup → the shortfall's
    return shaped(JobAnswer, jobs.view(job) if invoice is None else {**jobs.view(job), "invoice": invoice_view(invoice)})


@app.post(
    "/api/jobs/<job_id>/refund",
    summary="Claim a job's refundable sats with an invoice for exactly that amount; paid once",
    responses={
        200: documented(RefundAnswer, "the job and its refund's payout (paid, or pending when its outcome is not known yet)"),
        400: {"description": "the invoice is not valid, not for exactly refundable_sats, or expiring"},
        404: {"description": "no such job"},
        409: {"description": "the job is not final, nothing is refundable, or the invoice was used before"},
    },
)
def refund_job(job_id: Annotated[str, Path(description="the job_id")], body: Annotated[RefundBody, Body()]) -> dict[str, Any]:
    jobs = services().jobs
    payout = jobs.refund(job_id, body.invoice)
    return shaped(RefundAnswer, {**jobs.view(jobs.require(job_id)), "payout": payout_view(payout)})


lambda_handler = lambda_handler_for(app)
