"""Admin authentication: `Authorization: Bearer <ADMIN_API_KEY>`, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Any

from timmy.errors import Unauthorized
from timmy_http.event_handler import APIGatewayHttpResolver, Response
from timmy_http.secrets import admin_api_key
from timmy_http.services import services


def require_admin(app: APIGatewayHttpResolver, next_middleware: Any) -> Response:
    """Router middleware: every route of the admin function needs the admin key."""
    header = app.current_event.headers.get("authorization") or ""
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        raise Unauthorized("admin routes need 'Authorization: Bearer <admin key>'", code="missing_admin_key")
    expected = admin_api_key(services().settings)
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        raise Unauthorized("the admin key is wrong", code="invalid_admin_key")
    return next_middleware(app)
