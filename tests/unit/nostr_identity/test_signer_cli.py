"""The signer's command line (README walk-through) prints keys and headers the server accepts."""

from __future__ import annotations

import time

import pytest

from timmy.identity.nip98 import HttpRequestFacts, verify_nip98
from timmy.identity.signer import Keys, main


def test_keygen_prints_a_usable_key_pair(capsys: pytest.CaptureFixture[str]) -> None:
    main(["keygen"])
    lines = dict(line.split() for line in capsys.readouterr().out.splitlines())
    keys = Keys.from_secret(lines["nsec"])
    assert (keys.npub, keys.pubkey) == (lines["npub"], lines["pubkey"])


def test_header_is_a_nip98_header_for_that_url_method_and_body(capsys: pytest.CaptureFixture[str]) -> None:
    keys = Keys.generate()
    url, body = "http://127.0.0.1:3000/api/estimate", '{"request": "hi"}'
    main(["header", "--nsec", keys.nsec, "--url", url, "--method", "post", "--body", body])
    header = capsys.readouterr().out.strip()
    assert header.startswith("Nostr ")
    verified = verify_nip98(header.removeprefix("Nostr "), HttpRequestFacts(url=url, method="POST", body=body.encode()), time.time())
    assert verified.pubkey == keys.pubkey
