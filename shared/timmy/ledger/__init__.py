"""The double-entry ledger: the only way sats move."""

from timmy.ledger.ledger import Batch, ConditionFailed, Ledger
from timmy.ledger.model import Account, Transfer, TransferCode, TransferState

__all__ = ["Account", "Batch", "ConditionFailed", "Ledger", "Transfer", "TransferCode", "TransferState"]
