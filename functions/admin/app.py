"""Operator routes behind the admin key: the ledger audit, pool top-ups, grants, identities."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from timmy.config import Tier
from timmy.errors import InvalidInput
from timmy.money import SATS_MAX
from timmy.pubkey import PUBKEY_PATTERN
from timmy_http.answers import Answer, documented, shaped
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.auth import require_admin
from timmy_http.event_handler import Path, Query, Response, content_types
from timmy_http.fields import WholeNumber
from timmy_http.idempotency import idempotent, ledger_id
from timmy_http.openapi import errors
from timmy_http.pool import PoolView
from timmy_http.services import services

app = create_app()
app.use([require_admin])

GRANTS_PAGE_SIZE_MAX = 500
DAY_FORM = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DAY_PATTERN = re.compile(DAY_FORM)


class PoolTopup(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)  # a typo such as 'notes' is refused, not silently dropped

    # The use case's own bound (`FreeTierService.topup`: every sat there will ever be), stated in the spec.
    amount_sats: WholeNumber = Field(gt=0, le=SATS_MAX, description="Whole sats moved from operator equity to the pool.")
    note: str = Field(default="", max_length=500)


class CheckView(Answer):
    name: str = Field(description="the invariant: balanced, non_negative, accounts_match_transfers, daily_budgets, …")
    ok: bool
    detail: str
    offending_ids: list[str] = Field(description="what breaks it (the first 20)")
    unsettled_ids: list[str] = Field(description="suspects a live re-check could neither confirm nor clear (the first 20)")


class RecheckView(Answer):
    rounds: int
    suspects: list[str]
    confirmed: list[str]
    cleared: list[str]
    unsettled: list[str]
    counts: dict[str, int]


class AuditAnswer(Answer):
    ok: bool = Field(description="every invariant holds")
    checks: list[CheckView]
    recheck: RecheckView | None = Field(description="what a live audit re-read after a first scan torn by traffic; null when none")


class PoolTopupAnswer(Answer):
    transfer_id: str
    amount_sats: int
    pool: PoolView


class GrantRow(Answer):
    transfer_id: str
    pubkey: str
    request_hash: str
    tier: Tier
    reserved_sats: int
    absorbed_sats: int
    paid_for: str = Field(description="what the grant paid for: the job, or the session request's hold")
    day: str
    reserved_at: str
    granted_at: str
    pool_balance_after_sats: int | None = Field(default=None, description="present when the settlement read the pool")


class GrantsPage(Answer):
    day: str
    grants: list[GrantRow]
    next_cursor: str | None = Field(description="pass as 'cursor' for the next page; null after the last")


class IdentityAnswer(Answer):
    pubkey: str = Field(description="64 hex digits")
    npub: str
    tier: Tier = Field(description="the effective tier: the pin, else the one history earned")
    history_tier: Tier
    pinned_tier: Tier | None
    blocked: bool
    paid_sats: int
    paid_requests: int
    first_seen_at: str | None = Field(description="ISO-8601 UTC; null when never seen")


@app.get(
    "/api/admin/audit",
    summary="Run the ledger's invariant checks (contract section 4)",
    responses={200: documented(AuditAnswer, "the checks, each with what breaks it")},
)
def audit() -> dict[str, Any]:
    from timmy.ledger.invariants import audit_store  # this route only (see bench/coldstart.py)

    return shaped(AuditAnswer, audit_store(services().store).as_dict())


@app.post(
    "/api/admin/pool/topup",
    summary="Donate sats from operator equity to the generosity pool",
    responses={200: documented(PoolTopupAnswer, "the top-up's transfer and the pool after it")},
    openapi_extensions=errors(409),
)
def pool_topup(body: PoolTopup) -> Any:
    def compute() -> Any:
        # With an Idempotency-Key the ledger is idempotent too: a retry after a failure that lost
        # the stored answer finds the same transfer instead of booking a second one. Without one
        # the request is a new donation each time (the client chose no idempotency).
        transfer_id = ledger_id(app, "topup") or f"topup:{uuid.uuid4().hex}"
        transfer = services().free_tier.topup(body.amount_sats, body.note, transfer_id=transfer_id)
        pool = PoolView.of(services().free_tier.pool_status())
        answer = PoolTopupAnswer(transfer_id=transfer.transfer_id, amount_sats=transfer.amount_sats, pool=pool)
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=answer.model_dump(mode="json"))

    return idempotent(app, "admin-pool-topup", compute)


@app.get(
    "/api/admin/grants",
    summary="The grant audit rows of one UTC day, oldest first, paginated",
    responses={200: documented(GrantsPage, "one page of the day's grants")},
    openapi_extensions=errors(422),
)
def grants(
    day: Annotated[
        str | None, Query(description="UTC day, YYYY-MM-DD; today when absent", json_schema_extra={"pattern": DAY_FORM, "format": "date"})
    ] = None,
    limit: Annotated[int, Query(ge=1, le=GRANTS_PAGE_SIZE_MAX)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    if day is not None and not _is_day(day):
        raise InvalidInput("'day' must be a UTC day as YYYY-MM-DD", code="invalid_day")
    return shaped(GrantsPage, services().free_tier.grants(day, limit=limit, cursor=cursor))


def _is_day(text: str) -> bool:
    """YYYY-MM-DD and a real date (2026-02-30 is not; strptime alone would take 2026-2-3)."""
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return DAY_PATTERN.fullmatch(text) is not None


class IdentityControls(BaseModel):
    """`{tier}` pins a tier, `{tier: null}` unpins, `{blocked: true|false}` blocks or unblocks."""

    model_config = ConfigDict(extra="forbid", defer_build=True, json_schema_extra={"minProperties": 1})  # {} changes nothing: refused
    tier: Tier | None = Field(default=None, description="Pinned tier; null unpins.")
    # null is refused (`invalid_blocked`): the spec says so by documenting a boolean only.
    blocked: Annotated[StrictBool | None, WithJsonSchema({"type": "boolean", "description": "true: always gate, never subsidised."})] = None


@app.put(
    "/api/admin/identities/<pubkey>",
    summary="Pin or unpin an identity's tier, block or unblock it",
    responses={200: documented(IdentityAnswer, "the identity with its new controls")},
    openapi_extensions=errors(422),
)
def put_identity(
    pubkey: Annotated[str, Path(description="64 hex digits or an npub", json_schema_extra={"pattern": PUBKEY_PATTERN})],
    body: IdentityControls,
) -> dict[str, Any]:
    from timmy.identity.nostr import parse_pubkey  # this route only (see bench/coldstart.py)
    from timmy.identity.service import UNSET

    given = body.model_fields_set
    if "blocked" in given and body.blocked is None:
        raise InvalidInput("'blocked' is true or false", code="invalid_blocked")
    identity = services().identity
    profile = identity.set_controls(
        parse_pubkey(pubkey),
        tier=body.tier if "tier" in given else UNSET,
        blocked=body.blocked if body.blocked is not None else UNSET,
    )
    return shaped(IdentityAnswer, identity.describe(profile))


lambda_handler = lambda_handler_for(app)
