"""The identity use cases: authenticate a request (NIP-98 or nostr_token), issue tokens, resolve a
caller's tier, and the operator's pins and blocks. Persistence goes through the `Store` port passed
in; the token secret through a function (Secrets Manager in AWS, cached by the HTTP layer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from timmy.clock import Clock, iso
from timmy.config import TIERS, Settings, Tier
from timmy.errors import InvalidInput, Unauthorized
from timmy.identity.caller import Caller
from timmy.identity.tiers import Profile, profile_key, record_paid_action
from timmy.identity.tokens import TokenSigner
from timmy.ledger.updates import ITEM_ABSENT, update_action
from timmy.ports.store import Store

if TYPE_CHECKING:
    from timmy.identity.nip98 import HttpRequestFacts, VerifiedEvent

# NIP-98 and Nostr (libsecp256k1, bech32) are imported by the methods that use them: a caller
# authenticated by a token or a session, or resolved from its pubkey, never needs them.


class _Unset:
    pass


UNSET: Final = _Unset()


@dataclass(frozen=True)
class IssuedToken:
    token: str
    pubkey: str
    tier: Tier
    expires_at: int


class IdentityService:
    """Nostr identities: authentication, tokens, tiers and the operator's controls."""

    def __init__(self, store: Store, settings: Settings, clock: Clock, token_secret: Callable[[], str]):
        self.store = store
        self.settings = settings
        self.clock = clock
        self._token_secret = token_secret
        self._signer: tuple[str, TokenSigner] | None = None

    # --- authentication --------------------------------------------------------------------

    def authenticate_nip98(self, encoded_event: str, request: HttpRequestFacts) -> str:
        """The hex pubkey of a valid, first-seen NIP-98 header for `request`, or a 401."""
        from timmy.identity.nip98 import verify_nip98

        verified = verify_nip98(encoded_event, request, self.clock.now())
        self.consume_nip98(verified)
        return verified.pubkey

    def consume_nip98(self, verified: VerifiedEvent) -> None:
        """Accept a verified NIP-98 event id once (a conditional put with a TTL), or a 401."""
        from timmy.identity.nip98 import REPLAY_MEMORY_SECONDS

        item = {
            "pk": f"NIP98#{verified.event_id}",
            "sk": "USED",
            "pubkey": verified.pubkey,
            "ttl": verified.created_at + REPLAY_MEMORY_SECONDS,
        }
        if not self.store.put(item, condition=ITEM_ABSENT):
            raise Unauthorized("this NIP-98 event was already used; sign a fresh one per request", code="nip98_replayed")

    def authenticate_token(self, token: str) -> str:
        """The hex pubkey of a valid, unexpired nostr_token, or a 401."""
        return self.signer().verify(token, self.clock.now()).pubkey

    def signer(self) -> TokenSigner:
        """The token signer for the current secret (rebuilt when the secret rotates)."""
        secret = self._token_secret()
        if self._signer is None or self._signer[0] != secret:
            self._signer = (secret, TokenSigner(secret))
        return self._signer[1]

    # --- tokens ------------------------------------------------------------------------------

    def issue_token(self, pubkey: str) -> IssuedToken:
        """A nostr_token for an authenticated pubkey; marks the identity as seen."""
        now = self.clock.now()
        profile = self.profile(pubkey)
        if profile.first_seen_at is None:
            self._mark_seen(pubkey, now)
        expires_at = int(now) + self.settings.token_ttl_seconds
        token = self.signer().issue(pubkey, expires_at)
        return IssuedToken(token=token, pubkey=pubkey, tier=profile.tier(self.settings, now), expires_at=expires_at)

    def _mark_seen(self, pubkey: str, now: float) -> None:
        self.store.transact([update_action(profile_key(pubkey), set_={"pubkey": pubkey}, set_if_absent={"first_seen_at": int(now)})])

    # --- tiers ---------------------------------------------------------------------------------

    def profile(self, pubkey: str) -> Profile:
        """The stored standing of `pubkey` (an empty profile when never seen)."""
        return Profile.from_item(pubkey, self.store.get(*_key(profile_key(pubkey))))

    def caller(self, pubkey: str) -> Caller:
        """The authenticated caller `pubkey` with its effective tier and block flag."""
        return self._caller(self.profile(pubkey))

    def caller_with(self, pubkey: str, keys: Sequence[tuple[str, str]]) -> tuple[Caller, dict[tuple[str, str], dict[str, Any]]]:
        """`caller(pubkey)` and the items `keys` (those that exist), read in one round trip."""
        profile = _key(profile_key(pubkey))
        items = self.store.batch_get([profile, *keys])
        return self._caller(Profile.from_item(pubkey, items.pop(profile, None))), items

    def _caller(self, profile: Profile) -> Caller:
        return Caller(pubkey=profile.pubkey, tier=profile.tier(self.settings, self.clock.now()), blocked=profile.blocked)

    def record_paid_action(self, pubkey: str, sats: int) -> dict[str, Any]:
        """The transaction action that books one settled paid request (see `tiers.record_paid_action`)."""
        return record_paid_action(pubkey, sats, self.clock.now())

    # --- the operator's controls ------------------------------------------------------------------

    def set_controls(self, pubkey: str, tier: Tier | _Unset | None = UNSET, blocked: bool | _Unset = UNSET) -> Profile:
        """Pin (`tier`), unpin (`tier=None`), block or unblock `pubkey`; returns the new profile."""
        if isinstance(tier, _Unset) and isinstance(blocked, _Unset):
            raise InvalidInput("give 'tier' (a tier or null) and/or 'blocked' (true or false)", code="nothing_to_change")
        if not isinstance(tier, _Unset) and tier is not None and tier not in TIERS:
            raise InvalidInput(f"'tier' must be one of {', '.join(TIERS)} or null", code="invalid_tier")
        sets: dict[str, Any] = {"pubkey": pubkey, "controls_updated_at": iso(self.clock.now())}
        removes: list[str] = []
        if tier is None:
            removes.append("pinned_tier")
        elif not isinstance(tier, _Unset):
            sets["pinned_tier"] = tier
        if not isinstance(blocked, _Unset):
            sets["blocked"] = bool(blocked)
        self.store.transact([update_action(profile_key(pubkey), set_=sets, remove=removes)])
        return self.profile(pubkey)

    def describe(self, profile: Profile) -> dict[str, Any]:
        """An identity as the admin and identity routes show it (hex pubkey, npub, history, controls)."""
        from timmy.identity.nostr import npub_from_hex

        now = self.clock.now()
        return {
            "pubkey": profile.pubkey,
            "npub": npub_from_hex(profile.pubkey),
            "tier": profile.tier(self.settings, now),
            "history_tier": profile.history_tier(self.settings, now),
            "pinned_tier": profile.pinned_tier,
            "blocked": profile.blocked,
            "paid_sats": profile.paid_sats,
            "paid_requests": profile.paid_requests,
            "first_seen_at": iso(profile.first_seen_at) if profile.first_seen_at is not None else None,
        }


def _key(key: dict[str, str]) -> tuple[str, str]:
    return key["pk"], key["sk"]
