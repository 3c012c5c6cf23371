"""Typed domain errors. Each carries the contract's error code and HTTP status, mapped once to the
error shape `{"error": {"code", "message"}}` by `timmy_http.errors`."""

from __future__ import annotations

from typing import Any


class TimmyError(Exception):
    """Base of every error Timmy reports to a caller."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class InvalidInput(TimmyError):
    status_code = 400
    code = "invalid_input"


class Unauthorized(TimmyError):
    status_code = 401
    code = "unauthorized"


class PaymentRequired(TimmyError):
    status_code = 402
    code = "payment_required"


class NotFound(TimmyError):
    status_code = 404
    code = "not_found"


class Conflict(TimmyError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(TimmyError):
    status_code = 413
    code = "payload_too_large"


class Unprocessable(TimmyError):
    """Well formed, as the API's spec describes the field, but naming nothing that can exist: a
    pubkey off the curve, an npub whose checksum fails, a cursor this API never gave out."""

    status_code = 422
    code = "unprocessable"


class RateLimited(TimmyError):
    status_code = 429
    code = "rate_limited"


class Unavailable(TimmyError):
    status_code = 503
    code = "unavailable"


# --- ledger errors (raised by timmy.ledger, mapped to the statuses above) ----------------


class InsufficientFunds(Conflict):
    """A debit would take an account that must not go negative below zero."""

    code = "insufficient_funds"


class AlreadyApplied(Conflict):
    """A transfer id (or other idempotency id) was applied before with different parameters."""

    code = "already_applied"


class LedgerConflict(Unavailable):
    """DynamoDB kept cancelling the transaction for conflicts after the bounded retries."""

    code = "ledger_busy"


class TransactionCancelled(Exception):
    """A store transaction was cancelled; `reasons` has one entry per action (None where fine).

    Internal: the ledger turns it into one of the typed errors above.
    """

    def __init__(self, reasons: list[str | None]):
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"
