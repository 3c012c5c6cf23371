"""Consumer of the work queue: runs the work, prices actual usage and settles the ledger.

Use cases register their message types with `timmy.messages.register("work", ...)`; import their
modules here so the registrations run at cold start.
"""

from __future__ import annotations

from timmy_http.queue import batch_handler_for

lambda_handler = batch_handler_for("work")
