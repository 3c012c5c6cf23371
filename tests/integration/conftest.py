"""Integration fixtures shared across folders: a real LNbits for the session (tests/lnbits_server.py)."""

from tests.lnbits_server import lnbits

__all__ = ["lnbits"]
