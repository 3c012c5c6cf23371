"""Nostr sign-in: a nostr_token against a NIP-98 request, and the caller's own tier and budget."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from timmy.clock import iso
from timmy.config import Tier
from timmy.errors import Unauthorized
from timmy_http.app import create_app, lambda_handler_for
from timmy_http.caller import authenticated_pubkey, verified_nip98
from timmy_http.event_handler import Response, content_types
from timmy_http.idempotency import idempotent
from timmy_http.openapi import errors
from timmy_http.services import services

app = create_app()


class TokenOut(BaseModel):
    token: str = Field(description="Send as 'Authorization: Bearer <token>' (or ?nostr_token= on the estimate).")
    pubkey: str = Field(description="The identity, as 64 hex digits.")
    tier: Tier
    expires_at: str = Field(description="ISO-8601 UTC instant after which the token is refused.")


class MeOut(BaseModel):
    pubkey: str
    npub: str
    tier: Tier
    blocked: bool
    day: str = Field(description="The UTC day the budget figures are for.")
    budget_sats: int
    absorbed_sats: int
    reserved_sats: int
    remaining_sats: int
    paid_sats: int
    paid_requests: int
    first_seen_at: str | None


@app.post(
    "/api/identity/token",
    summary="Exchange a NIP-98 signed request for a nostr_token",
    responses={200: {"description": "A nostr_token for the signing pubkey", "content": {"application/json": {"model": TokenOut}}}},
    openapi_extensions=errors(409),
)
def issue_token() -> Any:
    verified = verified_nip98(app)

    def compute() -> Any:
        services().identity.consume_nip98(verified)  # once; a retry with the Idempotency-Key gets the stored answer
        issued = services().identity.issue_token(verified.pubkey)
        body = TokenOut(token=issued.token, pubkey=issued.pubkey, tier=issued.tier, expires_at=iso(issued.expires_at))
        return Response(200, content_types.APPLICATION_JSON, body.model_dump_json())

    # Scoped by the proven pubkey: a repeated Idempotency-Key never hands one caller's token to another.
    return idempotent(app, f"identity-token:{verified.pubkey}", compute)


@app.get("/api/identity/me", summary="The caller's tier and today's free-tier budget")
def me() -> MeOut:
    pubkey = authenticated_pubkey(app)
    if pubkey is None:
        raise Unauthorized(
            "send 'Authorization: Nostr <NIP-98 event>' or 'Authorization: Bearer <nostr_token>'", code="missing_credentials"
        )
    identity = services().identity
    profile = identity.profile(pubkey)
    described = identity.describe(profile)
    usage = services().free_tier.usage_today(pubkey, described["tier"], blocked=profile.blocked)
    return MeOut(
        **{name: described[name] for name in ("pubkey", "npub", "tier", "blocked", "paid_sats", "paid_requests", "first_seen_at")},
        day=usage.day,
        budget_sats=usage.budget_sats,
        absorbed_sats=usage.absorbed_sats,
        reserved_sats=usage.reserved_sats,
        remaining_sats=usage.remaining_sats,
    )


lambda_handler = lambda_handler_for(app)
