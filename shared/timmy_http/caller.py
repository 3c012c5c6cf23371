"""Resolving the caller of a route from its credentials (NIP-98 or a nostr_token).

Issue 6 (identity) implements this: a request with no credentials is anonymous (None); a request
whose credentials fail is a 401, never silently anonymous.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from timmy.identity.caller import Caller


def optional_caller(app: APIGatewayHttpResolver, allow_query_token: bool = False) -> Caller | None:
    """The caller of the current request, or None when it sent no credentials."""
    return None
