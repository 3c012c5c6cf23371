"""Typed domain errors. Each carries the contract's error code and HTTP status, mapped once to the
error shape `{"error": {"code", "message"}}` by `timmy_http.errors`."""

from __future__ import annotations

from typing import Any


class TimmyError(Exception):
    """Base of every error Timmy reports to a caller. A subclass names its HTTP status and code
    in its header: `class NotFound(TimmyError, status=404, code="not_found")`."""

    status_code = 400
    code = "bad_request"

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
        if code is not None:
            cls.code = code

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details or {}


class InvalidInput(TimmyError, status=400, code="invalid_input"): ...


class Unauthorized(TimmyError, status=401, code="unauthorized"): ...


class PaymentRequired(TimmyError, status=402, code="payment_required"):
    """Payment is required first; the contract's 402 body carries the invoice that pays it
    (`invoice`: an `InvoiceRecord`, rendered by the HTTP glue), when one could be issued."""

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None, invoice: Any = None):
        super().__init__(message, code=code, details=details)
        self.invoice = invoice


class NotFound(TimmyError, status=404, code="not_found"): ...


class Conflict(TimmyError, status=409, code="conflict"): ...


class PayloadTooLarge(TimmyError, status=413, code="payload_too_large"): ...


class Unprocessable(TimmyError, status=422, code="unprocessable"):
    """Well formed, as the API's spec describes the field, but naming nothing that can exist: a
    pubkey off the curve, an npub whose checksum fails, a cursor this API never gave out."""


class RateLimited(TimmyError, status=429, code="rate_limited"): ...


class Unavailable(TimmyError, status=503, code="unavailable"): ...


# --- ledger errors (raised by timmy.ledger, mapped to the statuses above) ----------------


class InsufficientFunds(Conflict, code="insufficient_funds"):
    """A debit would take an account that must not go negative below zero."""


class AlreadyApplied(Conflict, code="already_applied"):
    """A transfer id (or other idempotency id) was applied before with different parameters."""


class LedgerConflict(Unavailable, code="ledger_busy"):
    """DynamoDB kept cancelling the transaction for conflicts after the bounded retries."""


class TransactionCancelled(Exception):
    """A store transaction was cancelled; `reasons` has one entry per action (None where fine).

    Internal: the ledger turns it into one of the typed errors above.
    """

    def __init__(self, reasons: list[str | None]):
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons

    def failed(self, index: int) -> bool:
        return index < len(self.reasons) and self.reasons[index] == "ConditionalCheckFailed"


class RetryLater(Exception):
    """Not a fault: what a queue message asks cannot be done now, by design, and nothing was done.
    The queue's consumer reports the message failed (a `batchItemFailures` entry, logged at info and
    counted as deferred, never an invocation error), so the queue delivers it again after its
    VisibilityTimeout; each delivery counts towards its `maxReceiveCount` all the same."""


class WorkInProgress(RetryLater):
    """Another delivery of a job's work message holds the job's work lease: this one ran nothing.
    Not a caller's error: the worker lets it fail, so the queue redelivers the message later, when
    the job is final (then it does nothing) or the holder died and its lease lapsed (it runs the work)."""
