"""The session use case: a prepaid balance (`session:<id>`, never overdrawn) that synchronous
requests are held on, topped up by invoices and paid out once on close.

A request: evaluate → decide (the bound identity's tier) → **free**: pool and budget reserved in
the transaction that requires the session to be `active` (`add_free_reservation`: its conditions
are the decision; refused, it decides again on a read, `decide_and_reserve`); **partial** or
**gate**: the whole estimate held on the balance, in a transaction that also requires the session
to be `active` (no hold after a close began) — `402` when the balance cannot hold it → the work →
reconcile, one transaction: the grant for what the pool absorbs (partial: `reserve_partial_grant`
for `min(actual, absorb_sats)`, after the work), the rest charged from the hold, the remainder
released, the pool credited its share, the paid history appended, the totals.
Work that fails or comes back empty releases everything. Holds expire
(`SESSION_HOLD_TTL_SECONDS`, longer than any request), so the sweeper frees those of a request
whose process died, and a close is never blocked for ever by one. A close waits only for the holds
of requests: the payouts closes claimed are named on the session row (added in each claim's
transaction), so a payout in flight is answered, never waited for nor paid again.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from timmy import invoice_codec
from timmy.clock import iso
from timmy.errors import Conflict, InsufficientFunds, InvalidInput, NotFound, PaymentRequired, Unauthorized, Unavailable
from timmy.free_tier.decision import Decision
from timmy.free_tier.service import Reservation
from timmy.identity.caller import Caller
from timmy.ledger.ledger import Batch, ConditionFailed, Limit, decimal_seconds
from timmy.ledger.model import OPERATOR_REVENUE, Account, Transfer, TransferCode, account_key, session_account
from timmy.ledger.rows import Row
from timmy.payments.charges import book_paid_work
from timmy.payments.invoices import check_amount, new_owner_id
from timmy.payments.model import INDEX_ATTRIBUTES, InvoiceRecord, PayoutRecord, PayoutStatus, payout_key
from timmy.ports.executor import ExecutorError
from timmy.ports.lightning import LightningError
from timmy.ports.lnurl import parse_lightning_address
from timmy.work import PaidWork

log = logging.getLogger(__name__)

TOKEN_PREFIX = "st_"
SESSION_ID = re.compile(r"^[0-9a-f]{32}$")
CLOSE_POLL_SECONDS = 0.1
IDLE_PARTITION = "SESSIONS_IDLE"


def totals_key(session_id: str) -> tuple[str, str]:
    return f"SESSION#{session_id}", "TOTALS"


@dataclass(frozen=True)
class Session(Row, kind="session", id_field="session_id"):
    session_id: str
    status: str  # awaiting_payment → active → closing → closed; expired when never paid
    token_hash: str
    pubkey: str | None
    refund_address: str | None
    created_at: float
    base_url: str = ""
    last_used_at: float | None = None
    # The payouts closes claimed (usually one; another after a failed one, or for a top-up paid
    # after the close), each added in its claim's transaction: a close tells their holds on the
    # balance from the holds of requests by them, and answers the last one claimed.
    payout_ids: frozenset[str] | None = None
    last_payout_id: str | None = None


session_key = Session.key_of


@dataclass(frozen=True)
class RequestOutcome:
    result: str
    charged_sats: int
    absorbed_sats: int
    free_tier: dict[str, Any]
    balance_sats: int


@dataclass(frozen=True)
class CloseState:
    """What a close decides on: the session and its balance (one snapshot), and its close payouts."""

    session: Session
    account: Account
    payouts: dict[str, PayoutRecord]

    @property
    def requests_held_sats(self) -> int:
        """The balance's holds less those of payouts in flight: what requests still hold. (A payout
        read `paying` was claimed before the snapshot and is still held; one resolved since the
        snapshot only makes this larger for one more poll.)"""
        in_flight = sum(p.amount_sats for p in self.payouts.values() if p.status is PayoutStatus.PAYING)
        return self.account.debits_pending - in_flight

    @property
    def last_payout(self) -> PayoutRecord | None:
        return self.payouts.get(self.session.last_payout_id or "")


def _invoice_required(available_sats: int) -> InvalidInput:
    """A close that must pay the balance and was given no invoice to pay (nor a refund address)."""
    return InvalidInput(f"send an invoice for exactly {available_sats} sats to close the session", code="invoice_required")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(eq=False)
class Sessions(PaidWork):
    kind: ClassVar[str] = "session"

    # The caller a pubkey stands for, and other items read in the same round trip.
    _caller_with: Callable[[str, Sequence[tuple[str, str]]], tuple[Caller, dict[tuple[str, str], dict[str, Any]]]]
    _sleep: Callable[[float], None] = time.sleep

    # --- reads and the token ---------------------------------------------------------------

    def authorize(self, session_id: str, token: str | None) -> Session:
        """The session, when `token` is its own; a 401 otherwise (never saying whether it exists)."""
        item = self.ledger.item(session_key(session_id)) if isinstance(session_id, str) and SESSION_ID.match(session_id) else None
        given = _hash_token(token) if isinstance(token, str) and token.startswith(TOKEN_PREFIX) else ""
        if item is None or not hmac.compare_digest(str(item["token_hash"]), given):
            raise Unauthorized("send this session's token: 'X-Session-Token: st_…'", code="invalid_session_token")
        return Session.from_item(item)

    def view(self, session: Session) -> dict[str, Any]:
        """The session as a caller reads it: status, balance, holds, totals, and `payout`, its last
        close payout (a PayoutRecord, pending until the node says) or None."""
        account_id = session_account(session.session_id)
        last = [payout_key(session.last_payout_id)] if session.last_payout_id else []
        # One snapshot: refunded needs the account and the totals as one; the last payout rides along.
        items = self.ledger.snapshot([account_key(account_id), totals_key(session.session_id), *last])
        account = Account.from_item(items.get(account_key(account_id)), account_id)
        totals = items.get(totals_key(session.session_id), {})
        payout = items.get(last[0]) if last else None
        return {
            "session_id": session.session_id,
            "status": session.status,
            "balance_sats": account.posted_balance_sats,
            "held_sats": account.debits_pending,
            "available_sats": account.computed_available_sats,
            "pubkey": session.pubkey,
            "refund_address": session.refund_address,
            "totals": {
                **{name: int(totals.get(name, 0)) for name in ("topped_up_sats", "charged_sats", "absorbed_sats")},
                # What left the balance and was not charged was paid out: read from the ledger, so a
                # payout counts once however many closes answered it, and when it lands after them.
                "refunded_sats": account.debits_posted - int(totals.get("charged_sats", 0)),
                "requests": int(totals.get("requests", 0)),
            },
            "payout": PayoutRecord.from_item(payout) if payout else None,
        }

    # --- creating and topping up -------------------------------------------------------------

    def create(
        self, caller: Caller | None, amount_sats: object, refund_address: str | None, base_url: str
    ) -> tuple[Session, str, InvoiceRecord]:
        amount = check_amount(amount_sats, self.settings.session_max_sats, "amount_sats")
        if refund_address is not None:
            parse_lightning_address(refund_address, allow_local=self.settings.lnurl_allow_local)
        session_id, token = new_owner_id(), TOKEN_PREFIX + secrets.token_hex(32)
        invoice = self.invoices.issue(self.kind, session_id, amount, f"Timmy: session {session_id}", base_url)
        batch = self.ledger.batch()
        self.invoices.add(batch, invoice)
        session = Session(
            session_id=session_id,
            status="awaiting_payment",
            token_hash=_hash_token(token),
            pubkey=caller.pubkey if caller is not None else None,
            refund_address=refund_address.lower() if refund_address else None,
            created_at=batch.now,
            base_url=base_url,
            last_used_at=batch.now,
        )
        batch.put_once(f"session:{session_id}", session.item())
        self.ledger.commit(batch)
        return self.authorize(session_id, token), token, invoice

    def topup(self, session: Session, amount_sats: object) -> InvoiceRecord:
        amount = check_amount(amount_sats, self.settings.session_max_sats, "amount_sats")
        if session.status not in ("awaiting_payment", "active"):
            raise Conflict(f"the session is {session.status}; it takes no top-up", code="session_closed")
        invoice = self.invoices.issue(
            self.kind, session.session_id, amount, f"Timmy: top-up of session {session.session_id}", session.base_url
        )
        batch = self.ledger.batch()
        self.invoices.add(batch, invoice)
        self.ledger.commit(batch)
        return invoice

    # --- the invoice owner ---------------------------------------------------------------------

    def account_id(self, invoice: InvoiceRecord) -> str:
        return session_account(invoice.owner_id)  # all of a payment, excess included, is the balance

    def book(self, batch: Batch, invoice: InvoiceRecord) -> None:
        batch.count(totals_key(invoice.owner_id), {"type": "session_totals"}, topped_up_sats=invoice.received_sats)

    def paid(self, invoice: InvoiceRecord) -> None:
        session = self._reload(invoice.owner_id)
        self._transition(invoice.owner_id, ["awaiting_payment", "expired"], "active", **self._idle_entry(session, self.clock.now()))

    def expired(self, invoice: InvoiceRecord) -> None:
        self._transition(invoice.owner_id, ["awaiting_payment"], "expired")

    @staticmethod
    def _idle_entry(session: Session, now: float) -> dict[str, str]:
        """The idle index (gsi1) entry of a session the sweeper may close: one with a refund address."""
        if not session.refund_address:
            return {}
        return {"gsi1pk": IDLE_PARTITION, "gsi1sk": f"{iso(now)}#{session.session_id}"}

    def _transition(self, session_id: str, from_states: list[str], to: str, **set_: Any) -> bool:
        batch = self.ledger.batch()
        batch.transition(f"session:{session_id}", session_key(session_id), from_states, to, set_=set_ or None)
        try:
            self.ledger.commit(batch)
        except ConditionFailed:
            return False
        return True

    # --- a request -------------------------------------------------------------------------------

    def request(self, session: Session, request: object, model: str | None, max_output_tokens: object) -> RequestOutcome:
        """Run one request on the session: start it (`_start`), the work, then reconcile in one
        transaction — the grant for what the pool absorbs, the rest charged from the hold, the
        totals (`_reconcile`). Work that fails or comes back empty releases everything."""
        if session.status != "active":
            raise Conflict(f"the session is {session.status}; requests need an active session", code="session_not_active")
        evaluation = self.work.evaluate(request, model, max_output_tokens)
        estimate = evaluation.estimate
        balance_key = account_key(session_account(session.session_id))
        caller, read = self._caller_with(session.pubkey, [balance_key]) if session.pubkey else (None, {})
        request_id = new_owner_id()
        hold_id = f"session-hold:{session.session_id}:{request_id}"
        decision, reservation, hold = self._start(session, caller, estimate.sats, request_id, hold_id)
        free = hold is None
        try:
            result = self.work.run(evaluation.request, estimate)
        except ExecutorError as error:
            self._abandon(session, request_id, hold, free)
            raise Unavailable(f"the work failed and nothing was charged: {type(error).__name__}", code="work_failed") from None
        except BaseException:
            self._abandon(session, request_id, hold, free)
            raise
        actual = self.work.actual_charge_sats(result, estimate)
        grant: Reservation | None = None
        if free and reservation is not None and 0 < actual <= reservation.amount_sats:
            grant = reservation  # settled in the reconciling transaction, unread
        elif free and caller is not None and reservation is not None:  # nothing to absorb: the hold goes back
            self.free_tier.record_grant(
                caller.pubkey, request_id, actual, reservation.amount_sats, paid_for=hold_id, reservation=reservation
            )
        elif decision.serve == "partial" and caller is not None and actual > 0:
            grant = self.free_tier.reserve_partial_grant(caller, request_id, min(actual, decision.absorb_sats))
        charge, absorbed = self._reconcile(session, caller, actual, hold, hold_id, grant)
        if hold is None and caller is not None:
            # Free: the request moved nothing posted on the balance, so the balance read with the
            # identity, at its start, is one the session had while it ran (no read after the work).
            balance = Account.from_item(read.get(balance_key), session_account(session.session_id)).posted_balance_sats
        else:
            balance = self.ledger.account(session_account(session.session_id)).posted_balance_sats
        free_tier = {"serve": decision.serve, "absorb_sats": decision.absorb_sats, "charge_sats": decision.charge_sats}
        return RequestOutcome(result.text, charge, absorbed, free_tier, balance)

    def _start(
        self, session: Session, caller: Caller | None, estimate_sats: int, request_id: str, hold_id: str
    ) -> tuple[Decision, Reservation | None, Transfer | None]:
        """Decide, and commit the request's start: the session still `active` (its last use seen)
        and either the free tier's reservation of all of the estimate (free) or the estimate held
        on the balance (partial, gate). Free on the happy path is ONE transaction: the reservation
        is added, unread, to the active check's own (its conditions are the decision); when the
        pool or the budget refuses it, decide on what is read (`decide_and_reserve`), as before.
        Answers the decision, the free tier's reservation (free), the balance's hold (not free)."""
        if caller is not None:
            batch = self._seen(session)
            if (unread := self.free_tier.add_free_reservation(batch, caller, estimate_sats, request_id)) is not None:
                try:
                    self.ledger.commit(batch)
                    return *unread, None
                except ConditionFailed as failed:
                    if failed.ids(Limit.STATE):
                        raise Conflict("the session is closing or closed; requests are refused", code="session_not_active") from None
                    if not self.free_tier.refused_reservation(failed, unread[1]):
                        raise
            decided = self.free_tier.decide_and_reserve(caller, estimate_sats, request_id, unread=unread is None)
        else:
            decided = self.free_tier.decide(None, estimate_sats), None
        decision, reservation = decided
        free = reservation is not None and reservation.amount_sats >= estimate_sats
        batch = self._seen(session)
        hold = None
        if not free:
            hold = batch.reserve(
                hold_id,
                session_account(session.session_id),
                OPERATOR_REVENUE,
                estimate_sats,
                TransferCode.CHARGE,
                batch.now + self.settings.session_hold_ttl_seconds,
                session_id=session.session_id,
            )
        try:
            self.ledger.commit(batch)
        except ConditionFailed as failed:
            if reservation is not None:
                self._release(session, request_id)
            if failed.ids(Limit.STATE):
                raise Conflict("the session is closing or closed; requests are refused", code="session_not_active") from None
            available = self.ledger.account(session_account(session.session_id)).computed_available_sats
            shortfall = max(estimate_sats - available, 1)  # at least 1: the balance moved since the refusal
            raise PaymentRequired(
                f"the balance cannot hold this request's estimate of {estimate_sats} sats; top up at least {shortfall}: pay the invoice",
                code="insufficient_balance",
                details={
                    "estimated_sats": estimate_sats,
                    "available_sats": available,
                    "shortfall_sats": shortfall,
                    "topup": f"POST /api/sessions/{session.session_id}/topup",
                },
                invoice=self._shortfall_invoice(session, shortfall),
            ) from None
        if reservation is not None and not free:
            self._release(session, request_id)  # a smaller twin hold cannot happen for a fresh id; never keep it
            reservation = None
        return decision, reservation, hold

    def _shortfall_invoice(self, session: Session, shortfall_sats: int) -> InvoiceRecord | None:
        """A top-up invoice for the shortfall, the one a 402 carries: paid, it adds to the balance
        like any top-up. None when none can be issued (over SESSION_MAX_SATS, the node unavailable,
        the session closing meanwhile): the 402 still says how much to top up, and where."""
        try:
            return self.topup(session, shortfall_sats)
        except (InvalidInput, Conflict, Unavailable, LightningError) as error:
            log.warning("no top-up invoice for a 402", extra={"session_id": session.session_id, "reason": str(error)})
            return None

    def _seen(self, session: Session) -> Batch:
        """A batch that requires the session `active` and records its use (the idle index too)."""
        batch = self.ledger.batch()
        seen = {"last_used_at": decimal_seconds(batch.now), **self._idle_entry(session, batch.now)}
        batch.transition(f"session:{session.session_id}", session_key(session.session_id), ["active"], "active", set_=seen)
        return batch

    def _reconcile(
        self, session: Session, caller: Caller | None, actual: int, hold: Transfer | None, hold_id: str, grant: Reservation | None
    ) -> tuple[int, int]:
        """One transaction: the grant of `grant` for what it holds (at most `actual`, settled unread),
        the rest of `actual` charged from the balance's hold (the remainder released, the pool's
        share and the paid history booked), the totals. When the grant's hold is refused (settled
        or swept meanwhile) the grant is settled step by step (`record_grant` reads and answers,
        as before) and the charge committed after it. Answers (charged, absorbed) sats."""
        pubkey = caller.pubkey if caller else None
        if grant is not None:
            assert pubkey is not None
            absorbed = min(actual, grant.amount_sats)
            batch = self._charge(session, actual - absorbed, absorbed, hold, hold_id, pubkey)
            self.free_tier.add_grant(batch, grant, absorbed, paid_for=hold_id)
            try:
                self.ledger.commit(batch)
                return actual - absorbed, absorbed
            except ConditionFailed as failed:
                if not failed.lost(Limit.HOLD_RESOLVED, grant.transfer_id):
                    raise
            absorbed = self.free_tier.record_grant(
                pubkey, grant.request_hash, absorbed, grant.amount_sats, paid_for=hold_id, reservation=grant
            ).absorbed_sats
        else:
            absorbed = 0
        charge = max(actual - absorbed, 0)
        self.ledger.commit(self._charge(session, charge, absorbed, hold, hold_id, pubkey))
        return charge, absorbed

    def _charge(self, session: Session, charge: int, absorbed: int, hold: Transfer | None, hold_id: str, pubkey: str | None) -> Batch:
        """A batch that posts `charge` of the balance's hold (if any), books it, and counts the totals."""
        batch = self.ledger.batch()
        if hold is not None:
            batch.post(hold, charge)
            book_paid_work(batch, self.free_tier, hold_id, charge, pubkey)
        batch.count(totals_key(session.session_id), {"type": "session_totals"}, charged_sats=charge, absorbed_sats=absorbed, requests=1)
        return batch

    def _abandon(self, session: Session, request_id: str, hold: Any, free: bool) -> None:
        """Work that produced nothing chargeable: the hold and any reservation go back in full."""
        if hold is not None:
            batch = self.ledger.batch()
            batch.void(hold)
            with contextlib.suppress(ConditionFailed):  # the sweeper voided it meanwhile
                self.ledger.commit(batch)
        if free:
            self._release(session, request_id)

    def _release(self, session: Session, request_id: str) -> None:
        if session.pubkey:
            self.work.release(session.pubkey, request_id)

    # --- close -----------------------------------------------------------------------------------

    def close(self, session: Session, bolt11: object | None) -> tuple[dict[str, Any], PayoutRecord | None]:
        """Stop new requests, wait (bounded) for the holds of requests in flight, pay what remains
        once, close. Answers the session and its close payout: the one this close claimed or, when
        nothing is left to pay, the last one an earlier close claimed (pending, paid or failed), at
        once — a payout in flight holds the balance, but it is not a request to wait for."""
        if session.status == "expired" or session.status == "awaiting_payment":
            self._transition(session.session_id, [session.status], "closed")
        elif session.status == "active":
            self._refuse_a_close_that_cannot_pay(session, bolt11)  # bad input leaves the session active
            self._transition(session.session_id, ["active"], "closing")
        deadline = self.clock.now() + self.settings.session_close_wait_seconds
        while True:
            state = self._close_state(session.session_id)
            if state.requests_held_sats > 0:
                self.free_tier.sweep()  # a stale hold (its request died) past its expiry is voided here too
                if self.clock.now() >= deadline:
                    raise Conflict("requests on this session are still running; close again in a moment", code="requests_in_flight")
                self._sleep(CLOSE_POLL_SECONDS)
                continue
            available = state.account.computed_available_sats
            if available <= 0:
                payout = state.last_payout
                break
            try:
                payout = self._pay_out(state.session, bolt11, available)
                break
            except InsufficientFunds:  # a twin close claimed the balance first: answer its payout
                if self.clock.now() >= deadline:
                    raise
        if state.session.status == "closing":  # nothing paid (a claim closes the session itself)
            batch = self.ledger.batch()
            batch.transition(
                f"session:{session.session_id}", session_key(session.session_id), ["closing"], "closed", remove=INDEX_ATTRIBUTES
            )
            with contextlib.suppress(ConditionFailed):
                self.ledger.commit(batch)
        return self.view(self._reload(session.session_id)), payout

    def _refuse_a_close_that_cannot_pay(self, session: Session, bolt11: object | None) -> None:
        """InvalidInput, before an active session stops taking requests, for a close whose invoice
        is missing, malformed, expired or for another amount than the balance. While requests are
        in flight the balance left is not known yet: only a given invoice's form is checked."""
        state = self._close_state(session.session_id)
        if state.requests_held_sats > 0:
            if bolt11 is not None:
                invoice_codec.decode(bolt11)
            return
        available = state.account.computed_available_sats
        if available <= 0:
            return  # nothing to pay: the close ignores any invoice
        if bolt11 is None:
            if not session.refund_address:
                raise _invoice_required(available)
            return
        self._payouts().check_invoice(bolt11, available)

    def _close_state(self, session_id: str) -> CloseState:
        account_id = session_account(session_id)
        items = self.ledger.snapshot([session_key(session_id), account_key(account_id)])
        if session_key(session_id) not in items:
            raise NotFound("no such session", code="session_not_found")
        session = Session.from_item(items[session_key(session_id)])
        account = Account.from_item(items.get(account_key(account_id)), account_id)
        payout_keys = [payout_key(payout_id) for payout_id in session.payout_ids or ()]
        records = map(PayoutRecord.from_item, self.ledger.read(payout_keys).values()) if payout_keys else ()
        payouts = {record.payout_id: record for record in records}
        return CloseState(session, account, payouts)

    def _pay_out(self, session: Session, bolt11: object | None, available: int) -> PayoutRecord:
        if bolt11 is None:
            bolt11 = self.refund_invoice(session.refund_address, available, f"Timmy: session {session.session_id}")
            if bolt11 is None:
                raise _invoice_required(available)
        payouts = self._payouts()
        decoded = payouts.check_invoice(bolt11, available)
        payout_id = f"close-{session.session_id}-{decoded.payment_hash[:16]}"

        def claimed(batch: Batch) -> None:  # the session is closed and names its payout, as the payout is claimed
            batch.transition(
                f"session:{session.session_id}",
                session_key(session.session_id),
                ["closing", "closed"],
                "closed",
                remove=INDEX_ATTRIBUTES,
                set_={"last_payout_id": payout_id},
                add={"payout_ids": {payout_id}},
            )

        return payouts.pay(
            payout_id,
            f"session:{session.session_id}",
            session_account(session.session_id),
            str(bolt11),
            available,
            decoded,
            with_claim=claimed,
        )

    def _reload(self, session_id: str) -> Session:
        item = self.ledger.item(session_key(session_id))
        if item is None:
            raise NotFound("no such session", code="session_not_found")
        return Session.from_item(item)

    # --- the sweeper -----------------------------------------------------------------------------

    def sweep_idle(self, limit: int = 100) -> int:
        """Close and refund the sessions with a refund address idle past SESSION_IDLE_SECONDS (one
        whose requests are still running is left for the next run). Answers how many were closed."""
        cutoff = self.clock.now() - self.settings.session_idle_seconds
        items, _ = self.ledger.listed(IDLE_PARTITION, limit, until=cutoff)
        closed = 0
        for item in items:
            session = self._reload(item["session_id"])
            if session.status not in ("active", "closing"):
                continue
            try:
                self.close(session, None)
                closed += 1
            except Exception as error:  # unreachable address, a live request: the balance stays, the next run retries
                log.warning("idle session not closed", extra={"session_id": session.session_id, "error": str(error)[:200]})
        return closed
