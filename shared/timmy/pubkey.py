"""The one spelling of a Nostr identity inside the domain: 64 lower-case hex digits (x-only pubkey).

HTTP validates what a client sends; the domain canonicalises again at its own entry points, so an
upper-case spelling cannot open a second budget and no pubkey can carry an id separator.
"""

from __future__ import annotations

import re
import string
from typing import NewType

from timmy.errors import InvalidInput

Pubkey = NewType("Pubkey", str)

PUBKEY_HEX_LENGTH = 64
# The form of a pubkey a client may send (the API's spec documents this pattern): 64 hex digits in
# either case, or an npub (bech32: all lower or all upper case). Whether it names a key is checked after.
PUBKEY_PATTERN = "^(?:[0-9a-fA-F]{64}|npub1[02-9ac-hj-np-z]{58}|NPUB1[02-9AC-HJ-NP-Z]{58})$"
_HEX = frozenset(string.hexdigits)
HEX32 = re.compile(r"\A[0-9a-f]{64}\Z")  # the domain's spelling, or any 32 bytes in hex; \Z: "$" would accept a trailing newline


def canonical_pubkey(value: object) -> Pubkey:
    """`value` as the domain's pubkey (lower-case hex), or InvalidInput."""
    if not isinstance(value, str) or len(value) != PUBKEY_HEX_LENGTH or not _HEX.issuperset(value):
        shown = value[:16] + "…" if isinstance(value, str) and len(value) > 16 else value
        raise InvalidInput(f"a pubkey is {PUBKEY_HEX_LENGTH} hex digits, not {shown!r}")
    return Pubkey(value.lower())
