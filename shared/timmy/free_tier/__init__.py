"""The generosity pool and the free-tier decision (contract section 3)."""

from timmy.free_tier.decision import Decision, decide_from
from timmy.free_tier.service import BudgetUsage, FreeTierService, Grant, PoolStatus, Reservation

__all__ = ["BudgetUsage", "Decision", "FreeTierService", "Grant", "PoolStatus", "Reservation", "decide_from"]
