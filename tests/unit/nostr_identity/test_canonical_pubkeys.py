"""One key, one identity: a pubkey that is not exactly 64 lowercase hex digits never authenticates
(a trailing newline once made a second identity of the same key, escaping its block and pin)."""

from __future__ import annotations

import base64
import dataclasses
import json
import time

import pytest

from timmy.errors import Unauthorized
from timmy.identity.nip98 import HttpRequestFacts, verify_nip98
from timmy.identity.signer import Keys
from timmy.pubkey import HEX32

URL = "http://127.0.0.1:3000/api/identity/token"


@pytest.mark.parametrize("suffix", ["\n", " ", "\t"])
def test_a_pubkey_with_trailing_whitespace_is_not_hex(suffix: str) -> None:
    assert HEX32.match("a" * 64) and not HEX32.match("a" * 64 + suffix)


def test_a_nip98_event_signed_over_an_aliased_pubkey_is_refused() -> None:
    keys = Keys.generate()
    alias = dataclasses.replace(keys, pubkey=keys.pubkey + "\n")  # signs with the same secret
    event = alias.nip98_event(URL, "POST", created_at=int(time.time()))
    encoded = base64.b64encode(json.dumps(event).encode()).decode()
    with pytest.raises(Unauthorized):
        verify_nip98(encoded, HttpRequestFacts(url=URL, method="POST", body=b""), time.time())
