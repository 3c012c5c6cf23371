"""What every paid piece of work books beside its charge, in the charge's own transaction: the
pool's share (POOL_CREDIT_PCT) and the caller's paid history (what tiers read). Jobs and sessions
both call it, so the rule lives here once."""

from __future__ import annotations

from timmy.free_tier.service import FreeTierService
from timmy.identity.tiers import record_paid_action
from timmy.ledger.ledger import Batch


def book_paid_work(batch: Batch, free_tier: FreeTierService, charge_transfer_id: str, charge_sats: int, pubkey: str | None) -> None:
    """Add the pool credit and (for an identity) the paid history of `charge_sats` to `batch`."""
    if charge_sats <= 0:
        return
    free_tier.add_credit(batch, charge_sats, charge_transfer_id)
    if pubkey:
        batch.update(f"paid:{charge_transfer_id}", record_paid_action(pubkey, charge_sats, batch.now))
