"""Nostr primitives: NIP-01 event ids, BIP-340 signatures (libsecp256k1 through coincurve) and
NIP-19 `npub` keys. Plain functions over plain data; no I/O."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import bech32
from coincurve import PublicKeyXOnly

from timmy.errors import InvalidInput, Unprocessable
from timmy.pubkey import HEX32, PUBKEY_PATTERN

HEX64 = re.compile(r"\A[0-9a-f]{128}\Z")
NPUB_PREFIX = "npub"
NSEC_PREFIX = "nsec"
BECH32_LENGTH_MAX = 90  # NIP-19 keys are 63 characters; bech32's own limit is 90
_PUBKEY_FORM = re.compile(PUBKEY_PATTERN)


def event_serialization(pubkey: str, created_at: int, kind: int, tags: Sequence[Sequence[str]], content: str) -> bytes:
    """The NIP-01 serialisation `[0, pubkey, created_at, kind, tags, content]`: compact JSON, UTF-8.

    `ensure_ascii=False` keeps non-ASCII characters as themselves (NIP-01 escapes only the JSON
    control characters), which is what the other implementations hash.
    """
    payload = [0, pubkey, created_at, kind, [list(tag) for tag in tags], content]
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_id(pubkey: str, created_at: int, kind: int, tags: Sequence[Sequence[str]], content: str) -> str:
    """The NIP-01 event id: lowercase hex sha256 of the serialisation."""
    return hashlib.sha256(event_serialization(pubkey, created_at, kind, tags, content)).hexdigest()


def valid_xonly_pubkey(pubkey_hex: str) -> bool:
    """True when `pubkey_hex` is 64 lowercase hex digits naming a point on secp256k1."""
    if not HEX32.match(pubkey_hex):
        return False
    try:
        PublicKeyXOnly(bytes.fromhex(pubkey_hex))
    except ValueError:
        return False
    return True


def verify_schnorr(pubkey_hex: str, message: bytes, signature_hex: str) -> bool:
    """BIP-340 verification of `signature_hex` over `message` by the x-only `pubkey_hex`.

    Never raises on hostile input: malformed keys or signatures simply do not verify.
    """
    if not HEX32.match(pubkey_hex) or not HEX64.match(signature_hex):
        return False
    try:
        return bool(PublicKeyXOnly(bytes.fromhex(pubkey_hex)).verify(bytes.fromhex(signature_hex), message))
    except ValueError:
        return False


# --- NIP-19 ----------------------------------------------------------------------------


def encode_bech32_key(prefix: str, key_hex: str) -> str:
    """A 32-byte key as NIP-19 bech32 (`npub1…`, `nsec1…`)."""
    data = bech32.convertbits(bytes.fromhex(key_hex), 8, 5, True)
    if data is None:  # pragma: no cover - 32 bytes always convert
        raise ValueError("key does not convert to 5-bit groups")
    return str(bech32.bech32_encode(prefix, data))


def decode_bech32_key(prefix: str, text: str) -> str | None:
    """The hex of a NIP-19 bech32 key with `prefix`, or None when `text` is not one."""
    if len(text) > BECH32_LENGTH_MAX:
        return None
    hrp, data = bech32.bech32_decode(text)
    if hrp != prefix or data is None:
        return None
    decoded = bech32.convertbits(data, 5, 8, False)
    if decoded is None or len(decoded) != 32:
        return None
    return bytes(decoded).hex()


def npub_from_hex(pubkey_hex: str) -> str:
    """The `npub1…` form of a hex x-only public key."""
    return encode_bech32_key(NPUB_PREFIX, pubkey_hex)


def parse_pubkey(text: Any) -> str:
    """A public key given as 64 hex digits or as an `npub`, returned as lowercase hex.

    Raises InvalidInput (400, `invalid_pubkey`) for anything not of PUBKEY_PATTERN's form, and
    Unprocessable (422, `not_a_key`) for an npub whose checksum fails or a point off the curve.
    """
    if not isinstance(text, str) or not _PUBKEY_FORM.fullmatch(text):
        raise InvalidInput("a pubkey is 64 hex digits or an npub", code="invalid_pubkey")
    candidate = text
    if candidate.lower().startswith(NPUB_PREFIX + "1"):
        decoded = decode_bech32_key(NPUB_PREFIX, candidate)
        if decoded is None:
            raise Unprocessable("the npub does not decode: its checksum fails", code="not_a_key")
        candidate = decoded
    candidate = candidate.lower()
    if not valid_xonly_pubkey(candidate):
        raise Unprocessable("those 64 hex digits name no point on secp256k1: no identity has that key", code="not_a_key")
    return candidate
