"""`Idempotency-Key` on POST routes, through Powertools idempotency on the single table.

A route declares it with `idempotent(app, scope, compute)`: without the header `compute` simply
runs; with it, the first answer is stored (keyed by scope and key, validated against the body's
hash) and every retry gets that answer back. Errors are not stored: an error leaves no state, so a
retry may try again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timmy.errors import Conflict, InvalidInput
from timmy_http.event_handler import APIGatewayHttpResolver, Response
from timmy_http.services import services

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

IDEMPOTENCY_KEY_LENGTH_MAX = 255
IDEMPOTENCY_KEY_PATTERN = "^[!-~]+$"  # visible ASCII: no space, no control character, nothing a header might mangle
# The one definition of the header: the spec documents it on every POST route, and the handler's
# guard (timmy_http.app) refuses what breaks it on every POST route, before the route runs.
IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_LENGTH_MAX, "pattern": IDEMPOTENCY_KEY_PATTERN},
    "description": "a retry with the same key (and the same body) gets the first answer back; 1 to 255 visible ASCII characters",
}
_KEY = re.compile(f"[!-~]{{1,{IDEMPOTENCY_KEY_LENGTH_MAX}}}")
IDEMPOTENCY_TTL_SECONDS = 86_400

_execute: Callable[..., dict[str, Any]] | None = None
_execute_table: str | None = None
_config: IdempotencyConfig | None = None


def _executor() -> Callable[..., dict[str, Any]]:
    global _execute, _execute_table, _config
    # Imported here, not at the top: Powertools idempotency imports boto3 (about 110 ms of cold
    # start) and serves only the requests that carry an Idempotency-Key.
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function

    table = services().settings.table_name
    if _execute is None or _execute_table != table:
        store = services().idempotency_persistence
        config = IdempotencyConfig(
            event_key_jmespath="[scope, key]",
            payload_validation_jmespath="body_sha256",
            expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
            raise_on_no_idempotency_key=True,
            use_local_cache=False,
        )

        @idempotent_function(data_keyword_argument="request", persistence_store=store, config=config)
        def execute(request: dict[str, Any], compute: Callable[[], Response]) -> dict[str, Any]:
            response = compute()
            body = response.body if isinstance(response.body, str) else json.dumps(response.body)
            return {"status_code": response.status_code, "body": body, "content_type": response.content_type}

        _execute, _execute_table, _config = execute, table, config
    return _execute


def idempotency_key_problem(headers: dict[str, str]) -> str | None:
    """Why the request's Idempotency-Key is refused (None when absent or well formed)."""
    key = headers.get("idempotency-key")
    if key is None or _KEY.fullmatch(key):
        return None
    return f"Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} visible ASCII characters (no spaces)"


def _body_digest(body: str) -> str:
    """The body's hash for "same request?": JSON compared by value (key order and white space do
    not matter to a retry that re-serialises), anything else byte for byte."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except ValueError:
        canonical = body
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def ledger_id(app: APIGatewayHttpResolver, scope: str) -> str | None:
    """A ledger transfer id derived from the request's Idempotency-Key (None without one), so the
    ledger refuses a second booking even when the stored answer was lost."""
    key = app.current_event.headers.get("idempotency-key")
    return f"{scope}:{hashlib.sha256(key.encode()).hexdigest()[:40]}" if key else None


def callers_scope(app: APIGatewayHttpResolver, route: str, pubkey: str | None) -> str:
    """`route`'s scope for this caller alone: the identity's pubkey, or an anonymous caller's source
    address. A stored answer (a session's token, a job's id: what controls its money) is replayed
    to the caller that asked first, never to another one who sends the same key and body."""
    if pubkey:
        return f"{route}:pubkey:{pubkey}"
    return f"{route}:anonymous:{app.current_event.request_context.http.source_ip}"


def idempotent(app: APIGatewayHttpResolver, scope: str, compute: Callable[[], Response]) -> Response:
    """Run `compute` once per `Idempotency-Key` (if the caller sent one) and replay its answer."""
    key = app.current_event.headers.get("idempotency-key")
    if key is None:
        return compute()
    problem = idempotency_key_problem(app.current_event.headers)
    if problem is not None:  # the guard refuses it first on every POST route; kept for a route called another way
        raise InvalidInput(problem, code="invalid_idempotency_key")
    request = {"scope": scope, "key": key, "body_sha256": _body_digest(app.current_event.body or "")}
    execute = _executor()
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError, IdempotencyValidationError

    if _config is not None and app.lambda_context is not None:
        _config.register_lambda_context(app.lambda_context)  # the in-progress record expires with the invocation
    try:
        stored = execute(request=request, compute=compute)
    except IdempotencyValidationError:
        raise Conflict("this Idempotency-Key was used with a different body", code="idempotency_key_reused") from None
    except IdempotencyAlreadyInProgressError:
        raise Conflict("a request with this Idempotency-Key is still in progress; retry shortly", code="request_in_progress") from None
    return Response(status_code=stored["status_code"], content_type=stored["content_type"], body=stored["body"])
