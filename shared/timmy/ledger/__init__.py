"""The double-entry ledger: the only way sats move."""
