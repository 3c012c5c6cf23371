"""Operator routes behind the admin key: the ledger audit, pool top-ups, grants, identities."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from timmy.config import Tier
from timmy.errors import InvalidInput
from timmy.pubkey import PUBKEY_PATTERN
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.auth import require_admin
from timmy_http.fields import WholeNumber
from timmy_http.idempotency import idempotent, ledger_id
from timmy_http.openapi import errors
from timmy_http.services import services

app = create_app()
app.use([require_admin])

POOL_TOPUP_SATS_MAX = 2_100_000_000_000_000  # every sat there will ever be
GRANTS_PAGE_SIZE_MAX = 500
DAY_FORM = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
DAY_PATTERN = re.compile(DAY_FORM)


class PoolTopup(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo such as 'notes' is refused, not silently dropped

    amount_sats: WholeNumber = Field(gt=0, le=POOL_TOPUP_SATS_MAX, description="Whole sats moved from operator equity to the pool.")
    note: str = Field(default="", max_length=500)


@app.get("/api/admin/audit", summary="Run the ledger's invariant checks (contract section 4)")
def audit() -> dict[str, Any]:
    from timmy.ledger.invariants import audit_store  # this route only (see bench/coldstart.py)

    return audit_store(services().store).as_dict()


@app.post("/api/admin/pool/topup", summary="Donate sats from operator equity to the generosity pool", openapi_extensions=errors(409))
def pool_topup(body: PoolTopup) -> Any:
    def compute() -> Any:
        # With an Idempotency-Key the ledger is idempotent too: a retry after a failure that lost
        # the stored answer finds the same transfer instead of booking a second one. Without one
        # the request is a new donation each time (the client chose no idempotency).
        transfer_id = ledger_id(app, "topup") or f"topup:{uuid.uuid4().hex}"
        transfer = services().free_tier.topup(body.amount_sats, body.note, transfer_id=transfer_id)
        return _json(
            200,
            {
                "transfer_id": transfer.transfer_id,
                "amount_sats": transfer.amount_sats,
                "pool": services().free_tier.pool_status().as_dict(),
            },
        )

    return idempotent(app, "admin-pool-topup", compute)


@app.get("/api/admin/grants", summary="The grant audit rows of one UTC day, oldest first, paginated", openapi_extensions=errors(422))
def grants(
    day: Annotated[
        str | None, Query(description="UTC day, YYYY-MM-DD; today when absent", json_schema_extra={"pattern": DAY_FORM, "format": "date"})
    ] = None,
    limit: Annotated[int, Query(ge=1, le=GRANTS_PAGE_SIZE_MAX)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    if day is not None and not _is_day(day):
        raise InvalidInput("'day' must be a UTC day as YYYY-MM-DD", code="invalid_day")
    page = services().free_tier.grants(day, limit=limit, cursor=cursor)
    return page


def _is_day(text: str) -> bool:
    """YYYY-MM-DD and a real date (2026-02-30 is not; strptime alone would take 2026-2-3)."""
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return DAY_PATTERN.fullmatch(text) is not None


def _json(status: int, body: dict[str, Any]) -> Any:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


class IdentityControls(BaseModel):
    """`{tier}` pins a tier, `{tier: null}` unpins, `{blocked: true|false}` blocks or unblocks."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})  # {} changes nothing: refused
    tier: Tier | None = Field(default=None, description="Pinned tier; null unpins.")
    # null is refused (`invalid_blocked`): the spec says so by documenting a boolean only.
    blocked: Annotated[StrictBool | None, WithJsonSchema({"type": "boolean", "description": "true: always gate, never subsidised."})] = None


@app.put("/api/admin/identities/<pubkey>", summary="Pin or unpin an identity's tier, block or unblock it", openapi_extensions=errors(422))
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
    return identity.describe(profile)


lambda_handler = lambda_handler_for(app)
