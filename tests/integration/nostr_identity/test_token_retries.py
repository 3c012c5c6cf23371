"""POST /api/identity/token: a retry with the same Idempotency-Key returns the first answer; the same
NIP-98 event without one is a replay."""

from __future__ import annotations

import time

from tests.api_client import ApiClient
from timmy.identity.signer import Keys

URL = "http://127.0.0.1:3000/api/identity/token"


def test_an_idempotent_retry_gets_the_first_token_back(api: ApiClient) -> None:
    keys = Keys.generate()
    headers = {"authorization": keys.nip98_header(URL, "POST"), "idempotency-key": "sign-in-1"}
    first = api.post("/api/identity/token", headers=headers)
    again = api.post("/api/identity/token", headers=headers)
    assert first.status == again.status == 200 and first.json == again.json
    assert first.json["pubkey"] == keys.pubkey


def test_the_same_event_without_a_key_is_a_replay(api: ApiClient) -> None:
    keys = Keys.generate()
    headers = {"authorization": keys.nip98_header(URL, "POST")}
    assert api.post("/api/identity/token", headers=headers).status == 200
    replay = api.post("/api/identity/token", headers=headers)
    assert (replay.status, replay.error_code) == (401, "nip98_replayed")


def test_two_sign_ins_in_the_same_second_are_two_events(api: ApiClient) -> None:
    keys = Keys.generate()
    now = int(time.time())  # the signer adds a nonce, so equal timestamps still make distinct event ids
    for _ in range(2):
        assert api.post("/api/identity/token", headers={"authorization": keys.nip98_header(URL, "POST", created_at=now)}).status == 200
