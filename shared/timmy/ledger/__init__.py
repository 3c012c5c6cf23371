"""The double-entry ledger: the only way sats move."""

from timmy.ledger.ledger import Batch, ConditionFailed, Ledger, Limit, Refused
from timmy.ledger.model import Account, Transfer, TransferCode, TransferState

__all__ = ["Account", "Batch", "ConditionFailed", "Ledger", "Limit", "Refused", "Transfer", "TransferCode", "TransferState"]
