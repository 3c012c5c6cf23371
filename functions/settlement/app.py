"""Consumer of the settlement queue: payment notifications, one idempotent step per payment hash.

A notification is only a hint: `Invoices.settle` asks the backend what was paid and books it once.
While the backend does not yet say paid (the "payment not found" race) the message raises and SQS
redelivers it after the visibility timeout; after `maxReceiveCount` it rests in the DLQ.
"""

from __future__ import annotations

import re
from typing import Any

from timmy import messages
from timmy_http.observability import logger
from timmy_http.queue import batch_handler_for
from timmy_http.services import services

PAYMENT_HASH = re.compile(r"^[0-9a-f]{64}$")


@messages.register("settlement", messages.INVOICE_NOTIFIED)
def invoice_notified(message: dict[str, Any]) -> None:
    payment_hash, owner = message.get("payment_hash"), message.get("owner")
    if not isinstance(payment_hash, str) or not PAYMENT_HASH.match(payment_hash) or not isinstance(owner, (str, type(None))):
        raise messages.MalformedMessage("invoice.notified needs a payment_hash of 64 lowercase hex and an optional owner")
    outcome = services().invoices.settle(payment_hash, owner=owner)
    logger.info("invoice notification settled", extra={"payment_hash": payment_hash, "outcome": outcome.value})


lambda_handler = batch_handler_for("settlement")
