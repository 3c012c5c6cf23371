"""Resolving the caller of a route from its credentials (NIP-98 or a nostr_token).

No credentials: anonymous (None). Credentials that fail: a 401 with the failing check's code —
never silently anonymous, so a client with a broken signer learns it instead of paying full price.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from timmy.config import Settings
from timmy.errors import Unauthorized
from timmy.identity.caller import Caller
from timmy_http.event_handler import APIGatewayHttpResolver
from timmy_http.services import services

if TYPE_CHECKING:
    from timmy.identity.nip98 import HttpRequestFacts, VerifiedEvent

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
AUTHORIZATION_CHARS_MAX = 10_000


def public_url(event: dict[str, Any], settings: Settings) -> str:
    """The absolute URL a NIP-98 `u` tag must carry for this request (path and raw query).

    `PUBLIC_BASE_URL` when configured (custom domains, proxies); otherwise the domain API Gateway
    itself asserts (`requestContext.domainName`: only ever one of the API's own domains) over https,
    the only scheme an HTTP API serves. Never the `Host` or `X-Forwarded-Proto` headers, which a
    client writes: an event signed for another service must not be replayable here. The local
    gateway asserts its own loopback address, served over plain http.
    """
    path = event.get("rawPath") or "/"
    query = event.get("rawQueryString") or ""
    base = settings.public_base_url.rstrip("/")
    if not base:
        host = str((event.get("requestContext") or {}).get("domainName") or "")
        name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.split(":", 1)[0]
        base = f"{'http' if name.lower() in LOOPBACK_HOSTS else 'https'}://{host}"
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def public_base_url(app: APIGatewayHttpResolver) -> str:
    """The scheme and host the client called (as `public_url` decides them): where Timmy's own
    callbacks (the Lightning webhook) reach it."""
    parts = urlsplit(public_url(app.current_event.raw_event, services().settings))
    return f"{parts.scheme}://{parts.netloc}"


def request_facts(app: APIGatewayHttpResolver) -> HttpRequestFacts:
    """What a NIP-98 event of the current request must match."""
    from timmy.identity.nip98 import HttpRequestFacts  # NIP-98 (and coincurve) only when a request is signed

    event = app.current_event
    body = event.body or ""
    return HttpRequestFacts(
        url=public_url(event.raw_event, services().settings), method=event.http_method.upper(), body=body.encode("utf-8")
    )


def _credentials(app: APIGatewayHttpResolver, allow_query_token: bool) -> tuple[str, str] | None:
    header = app.current_event.headers.get("authorization")
    query_token = (app.current_event.query_string_parameters or {}).get("nostr_token") if allow_query_token else None
    if header is not None and query_token is not None:
        raise Unauthorized("send one credential: an Authorization header or ?nostr_token=, not both", code="multiple_credentials")
    if query_token is not None:
        return "bearer", query_token
    if header is None:
        return None
    if len(header) > AUTHORIZATION_CHARS_MAX:
        raise Unauthorized("the Authorization header is too large", code="authorization_too_large")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in ("nostr", "bearer") or not value.strip():
        raise Unauthorized(
            "use 'Authorization: Nostr <NIP-98 event>' or 'Authorization: Bearer <nostr_token>'", code="unsupported_authorization"
        )
    return scheme.lower(), value.strip()


def authenticated_pubkey(app: APIGatewayHttpResolver, allow_query_token: bool = False) -> str | None:
    """The hex pubkey proven by the request's credentials, None without credentials, else a 401."""
    credentials = _credentials(app, allow_query_token)
    if credentials is None:
        return None
    scheme, value = credentials
    identity = services().identity
    if scheme == "nostr":
        return identity.authenticate_nip98(value, request_facts(app))
    return identity.authenticate_token(value)


def verified_nip98(app: APIGatewayHttpResolver) -> VerifiedEvent:
    """The request's NIP-98 event, checked but not yet consumed (see `IdentityService.consume_nip98`):
    a route that replays stored answers consumes it only when it really runs."""
    credentials = _credentials(app, allow_query_token=False)
    if credentials is None:
        raise Unauthorized("sign this request with NIP-98: 'Authorization: Nostr <base64 event>'", code="missing_credentials")
    scheme, value = credentials
    if scheme != "nostr":
        raise Unauthorized("this route needs a NIP-98 'Authorization: Nostr' header, not a token", code="nip98_required")
    from timmy.identity.nip98 import verify_nip98

    return verify_nip98(value, request_facts(app), services().clock.now())


def optional_caller(app: APIGatewayHttpResolver, allow_query_token: bool = False) -> Caller | None:
    """The caller of the current request, or None when it sent no credentials."""
    pubkey = authenticated_pubkey(app, allow_query_token)
    return None if pubkey is None else services().identity.caller(pubkey)
