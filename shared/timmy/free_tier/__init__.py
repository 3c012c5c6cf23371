"""The generosity pool and the free-tier decision (contract section 3)."""
