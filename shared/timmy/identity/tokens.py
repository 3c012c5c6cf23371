"""nostr_tokens: short bearer credentials issued against a valid NIP-98 request.

Format (ASCII, no padding): `nt1.<key id>.<pubkey hex>.<expires_at>.<signature>` where the
signature is base64url(HMAC-SHA256(secret, "nt1.<key id>.<pubkey>.<expires_at>")).

The token secret may hold several secrets separated by commas: the first signs, every one verifies
(rotation: put the new secret first, drop the old one after the token TTL). A key id is a short
hash of its secret, so a token names the key that signed it without revealing it; a token signed
with a secret we do not hold is refused as `token_unknown_key`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from timmy.errors import Unauthorized
from timmy.pubkey import HEX32

TOKEN_VERSION = "nt1"
TOKEN_CHARS_MAX = 256
KEY_ID_CHARS = 8
EXPIRES_AT_DIGITS_MAX = 12


def key_id(secret: str) -> str:
    """The public name of a token secret (first hex digits of a domain-separated hash)."""
    return hashlib.sha256(b"timmy/nostr_token/key-id\x00" + secret.encode()).hexdigest()[:KEY_ID_CHARS]


@dataclass(frozen=True)
class TokenClaims:
    pubkey: str
    expires_at: int
    key_id: str


class TokenSigner:
    """Issues and verifies nostr_tokens with the secret(s) it is given."""

    def __init__(self, secrets: str):
        keys = [secret.strip() for secret in secrets.split(",") if secret.strip()]
        if not keys:
            raise ValueError("a token secret is required")
        self._signing_key = keys[0]
        self._keys = {key_id(secret): secret for secret in reversed(keys)}
        self.signing_key_id = key_id(keys[0])

    def issue(self, pubkey: str, expires_at: int) -> str:
        """A token for `pubkey` (hex) valid until `expires_at` (epoch seconds)."""
        unsigned = f"{TOKEN_VERSION}.{self.signing_key_id}.{pubkey}.{expires_at}"
        return f"{unsigned}.{_mac(self._signing_key, unsigned)}"

    def verify(self, token: str, now: float) -> TokenClaims:
        """The claims of a token this service signed and that has not expired, or a 401."""
        if len(token) > TOKEN_CHARS_MAX:
            raise Unauthorized("the nostr_token is too long", code="token_malformed")
        parts = token.strip().split(".")
        if len(parts) != 5 or parts[0] != TOKEN_VERSION:
            raise Unauthorized("the nostr_token is not one this service issues", code="token_malformed")
        _version, kid, pubkey, expires_text, signature = parts
        if not HEX32.match(pubkey) or not expires_text.isascii() or not expires_text.isdigit() or len(expires_text) > EXPIRES_AT_DIGITS_MAX:
            raise Unauthorized("the nostr_token is not one this service issues", code="token_malformed")
        secret = self._keys.get(kid)
        if secret is None:
            raise Unauthorized("the nostr_token was signed with a key this service does not hold", code="token_unknown_key")
        expected = _mac(secret, ".".join(parts[:4]))
        if not hmac.compare_digest(expected.encode(), signature.encode("ascii", errors="replace")):
            raise Unauthorized("the nostr_token's signature is wrong", code="token_bad_signature")
        expires_at = int(expires_text)
        if expires_at <= now:
            raise Unauthorized("the nostr_token has expired; ask POST /api/identity/token for a new one", code="token_expired")
        return TokenClaims(pubkey=pubkey, expires_at=expires_at, key_id=kid)


def _mac(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
