"""The client side of Nostr identity: keys, signed events and NIP-98 headers.

Used by the tests, the benchmarks and any Python client of Timmy:

    keys = Keys.generate()
    headers = {"Authorization": keys.nip98_header("https://api.example/api/identity/token", "POST", b"")}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey

from timmy.identity.nip98 import NIP98_KIND
from timmy.identity.nostr import NSEC_PREFIX, decode_bech32_key, encode_bech32_key, event_id, npub_from_hex


@dataclass(frozen=True)
class Keys:
    """A Nostr key pair (secret key hex, x-only public key hex)."""

    secret_hex: str
    pubkey: str

    @classmethod
    def generate(cls) -> Keys:
        return cls.from_secret(os.urandom(32).hex())

    @classmethod
    def from_secret(cls, secret: str) -> Keys:
        """Keys from a secret key as 64 hex digits or an `nsec1…`."""
        if secret.startswith(NSEC_PREFIX + "1"):
            decoded = decode_bech32_key(NSEC_PREFIX, secret)
            if decoded is None:
                raise ValueError("the nsec does not decode")
            secret = decoded
        private = PrivateKey(bytes.fromhex(secret))
        xonly = private.public_key.format(compressed=True)[1:]
        return cls(secret_hex=secret, pubkey=xonly.hex())

    @property
    def npub(self) -> str:
        return npub_from_hex(self.pubkey)

    @property
    def nsec(self) -> str:
        return encode_bech32_key(NSEC_PREFIX, self.secret_hex)

    def sign_event(self, kind: int, tags: Sequence[Sequence[str]], content: str = "", created_at: int | None = None) -> dict[str, Any]:
        """A signed NIP-01 event."""
        created = int(time.time()) if created_at is None else created_at
        tag_lists = [list(tag) for tag in tags]
        identifier = event_id(self.pubkey, created, kind, tag_lists, content)
        signature = PrivateKey(bytes.fromhex(self.secret_hex)).sign_schnorr(bytes.fromhex(identifier))
        return {
            "id": identifier,
            "pubkey": self.pubkey,
            "created_at": created,
            "kind": kind,
            "tags": tag_lists,
            "content": content,
            "sig": signature.hex(),
        }

    def nip98_event(
        self, url: str, method: str, body: bytes = b"", created_at: int | None = None, extra_tags: Sequence[Sequence[str]] = ()
    ) -> dict[str, Any]:
        """A signed kind-27235 event for one request (a `payload` tag when there is a body)."""
        # A nonce makes two requests signed in the same second two events (each id is accepted once).
        tags: list[list[str]] = [["u", url], ["method", method.upper()], ["nonce", os.urandom(8).hex()]]
        if body:
            tags.append(["payload", hashlib.sha256(body).hexdigest()])
        tags.extend(list(tag) for tag in extra_tags)
        return self.sign_event(NIP98_KIND, tags, "", created_at)

    def nip98_header(self, url: str, method: str, body: bytes = b"", created_at: int | None = None) -> str:
        """The `Authorization` header value for one request: `Nostr <base64 event>`."""
        return encode_nip98_header(self.nip98_event(url, method, body, created_at))


def encode_nip98_header(event: dict[str, Any]) -> str:
    """`Nostr <base64 of the event's JSON>`."""
    return "Nostr " + base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()


def main(argv: Sequence[str] | None = None) -> None:
    """A command line for trying the API with curl:

    python -m timmy.identity.signer keygen
    python -m timmy.identity.signer header --nsec NSEC --url URL [--method POST] [--body JSON]
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m timmy.identity.signer", description="Nostr keys and NIP-98 headers for Timmy.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new key pair (nsec, npub, hex pubkey)")
    header = commands.add_parser("header", help="print an Authorization header value for one request")
    header.add_argument("--nsec", required=True, help="the secret key, nsec or hex")
    header.add_argument("--url", required=True, help="the absolute URL, query string included")
    header.add_argument("--method", default="GET")
    header.add_argument("--body", default="", help="the exact body that will be sent")
    args = parser.parse_args(argv)
    if args.command == "keygen":
        keys = Keys.generate()
        print(f"nsec   {keys.nsec}\nnpub   {keys.npub}\npubkey {keys.pubkey}")
    else:
        try:
            keys = Keys.from_secret(args.nsec)
        except ValueError as bad:
            parser.error(f"--nsec: {bad}")
        print(keys.nip98_header(args.url, args.method, args.body.encode()))


if __name__ == "__main__":
    main()
