"""Nostr identity: NIP-98 auth, nostr_tokens, NIP-19 keys and trust tiers."""
