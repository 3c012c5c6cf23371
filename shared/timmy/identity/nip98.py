"""NIP-98 HTTP auth: `Authorization: Nostr <base64 of a signed kind-27235 event>`.

`verify_nip98` is pure (the request, the header and the time in, the verified event out); the
once-only check of the event id needs the store and lives in `IdentityService`. Every refusal is
a 401 with its own error code, so a client can tell what it got wrong; nothing here raises
anything else on hostile input.

The cheap, semantic checks (kind, time window, `u`, `method`, `payload`) run before the id and the
signature: a tampered field is then named for what it is, and a stale or misdirected header costs
no elliptic-curve work.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from timmy.errors import Unauthorized
from timmy.identity.nostr import HEX64, event_id, valid_xonly_pubkey, verify_schnorr
from timmy.pubkey import HEX32

NIP98_KIND = 27235
NIP98_WINDOW_SECONDS = 60  # contract section 2: created_at within ±60 s
NIP98_HEADER_CHARS_MAX = 8_192  # a real header is under 1 KiB; this bounds parsing work
NIP98_TAGS_MAX = 32
NIP98_TAG_CHARS_MAX = 4_096
# An event id is remembered a little longer than the window in which it could be accepted, so
# DynamoDB's (lazy) TTL deletion can never reopen it: after ttl the time check refuses it anyway.
REPLAY_MEMORY_SECONDS = 2 * NIP98_WINDOW_SECONDS + 60


@dataclass(frozen=True)
class HttpRequestFacts:
    """What a NIP-98 event must match: the absolute public URL (with query), method and body."""

    url: str
    method: str
    body: bytes


@dataclass(frozen=True)
class VerifiedEvent:
    """A NIP-98 event that passed every stateless check."""

    pubkey: str
    event_id: str
    created_at: int


def _refuse(code: str, message: str) -> Unauthorized:
    return Unauthorized(message, code=code)


def decode_event(encoded: str) -> dict[str, Any]:
    """The event object of a header's base64 part; each kind of garbage has its own code."""
    if len(encoded) > NIP98_HEADER_CHARS_MAX:
        raise _refuse("nip98_header_too_large", f"the NIP-98 header is over {NIP98_HEADER_CHARS_MAX} characters")
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("nip98_invalid_base64", "the NIP-98 header is not valid base64") from None
    try:
        event = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _refuse("nip98_invalid_json", "the NIP-98 header does not hold a JSON object") from None
    if not isinstance(event, dict):
        raise _refuse("nip98_invalid_json", "the NIP-98 header does not hold a JSON object")
    _check_shape(event)
    return event


_FIELD_TYPES: dict[str, type] = {"id": str, "pubkey": str, "created_at": int, "kind": int, "tags": list, "content": str, "sig": str}


def _check_shape(event: dict[str, Any]) -> None:
    missing = [name for name in _FIELD_TYPES if name not in event]
    if missing:
        raise _refuse("nip98_missing_field", f"the NIP-98 event lacks {', '.join(missing)}")
    for name, expected in _FIELD_TYPES.items():
        value = event[name]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise _refuse("nip98_wrong_type", f"the NIP-98 event's '{name}' must be a JSON {expected.__name__}")
    tags = event["tags"]
    if len(tags) > NIP98_TAGS_MAX:
        raise _refuse("nip98_wrong_type", f"the NIP-98 event has more than {NIP98_TAGS_MAX} tags")
    for tag in tags:
        if not isinstance(tag, list) or not tag or not all(isinstance(part, str) for part in tag):
            raise _refuse("nip98_wrong_type", "each NIP-98 tag must be a non-empty list of strings")
        if sum(len(part) for part in tag) > NIP98_TAG_CHARS_MAX:
            raise _refuse("nip98_wrong_type", f"a NIP-98 tag is over {NIP98_TAG_CHARS_MAX} characters")
    for name, pattern in (("id", HEX32), ("pubkey", HEX32), ("sig", HEX64)):
        if not pattern.match(event[name]):
            raise _refuse("nip98_malformed_field", f"the NIP-98 event's '{name}' must be lowercase hex of the right length")


def _single_tag(tags: list[list[str]], name: str, required: bool) -> str | None:
    values = [tag[1] if len(tag) > 1 else "" for tag in tags if tag[0] == name]
    if len(values) > 1:
        raise _refuse("nip98_duplicate_tag", f"the NIP-98 event has more than one '{name}' tag")
    if not values:
        if required:
            raise _refuse("nip98_missing_tag", f"the NIP-98 event has no '{name}' tag")
        return None
    return values[0]


def verify_nip98(encoded: str, request: HttpRequestFacts, now: float) -> VerifiedEvent:
    """Check a NIP-98 header's event against `request` at time `now` (everything but replay)."""
    event = decode_event(encoded)
    if event["kind"] != NIP98_KIND:
        raise _refuse("nip98_wrong_kind", f"a NIP-98 event has kind {NIP98_KIND}, not {event['kind']}")
    _check_time(event["created_at"], now)
    tags: list[list[str]] = event["tags"]
    url = _single_tag(tags, "u", required=True)
    if url != request.url:
        raise _refuse("nip98_url_mismatch", f"the NIP-98 'u' tag must be exactly {request.url}")
    method = _single_tag(tags, "method", required=True)
    if method != request.method.upper():
        raise _refuse("nip98_method_mismatch", f"the NIP-98 'method' tag must be {request.method.upper()}")
    _check_payload(_single_tag(tags, "payload", required=bool(request.body)), request.body)
    if not valid_xonly_pubkey(event["pubkey"]):
        raise _refuse("nip98_invalid_pubkey", "the NIP-98 event's pubkey is not a point on secp256k1")
    try:
        recomputed = event_id(event["pubkey"], event["created_at"], event["kind"], tags, event["content"])
    except UnicodeEncodeError:  # a lone surrogate escaped in the JSON
        raise _refuse("nip98_malformed_field", "the NIP-98 event holds text that is not valid Unicode") from None
    if recomputed != event["id"]:
        raise _refuse("nip98_id_mismatch", "the NIP-98 event's id is not the hash of its contents")
    if not verify_schnorr(event["pubkey"], bytes.fromhex(recomputed), event["sig"]):
        raise _refuse("nip98_bad_signature", "the NIP-98 event's signature does not verify for its pubkey")
    return VerifiedEvent(pubkey=event["pubkey"], event_id=recomputed, created_at=event["created_at"])


def _check_time(created_at: int, now: float) -> None:
    if created_at < now - NIP98_WINDOW_SECONDS:
        raise _refuse("nip98_expired", f"the NIP-98 event is more than {NIP98_WINDOW_SECONDS} s old; sign a fresh one")
    if created_at > now + NIP98_WINDOW_SECONDS:
        raise _refuse("nip98_from_future", f"the NIP-98 event is more than {NIP98_WINDOW_SECONDS} s in the future; check your clock")


def _check_payload(payload_hex: str | None, body: bytes) -> None:
    if payload_hex is None:
        return  # no body and no tag
    if payload_hex.lower() != hashlib.sha256(body).hexdigest():
        raise _refuse("nip98_payload_mismatch", "the NIP-98 'payload' tag is not the sha256 of the body")
