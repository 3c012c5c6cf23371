"""Consumer of the settlement queue: payment notifications, one idempotent step per payment hash.

Use cases register their message types with `timmy.messages.register("settlement", ...)`; import
their modules here so the registrations run at cold start.
"""

from __future__ import annotations

from timmy_http.queue import batch_handler_for

lambda_handler = batch_handler_for("settlement")
