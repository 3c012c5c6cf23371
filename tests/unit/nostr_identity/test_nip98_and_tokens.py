"""NIP-98 verification (pure part), nostr_tokens and tiers, without a store."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from timmy.config import Settings
from timmy.errors import Unauthorized
from timmy.identity.nip98 import HttpRequestFacts, verify_nip98
from timmy.identity.nostr import event_id
from timmy.identity.signer import Keys
from timmy.identity.tiers import Profile, record_paid_action
from timmy.identity.tokens import TokenSigner

NOW = 1_790_000_000
URL = "https://api.example.com/api/estimate?request=hi&model=m"
BODY = b'{"request":"hello"}'
KEYS = Keys.from_secret("67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa")
OTHER = Keys.from_secret("b7e151628aed2a6abf7158809cf4f3c762e7160f38b4da56a784d9045190cfef")
REQUEST = HttpRequestFacts(url=URL, method="POST", body=BODY)


def encode(event: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(event).encode()).decode()


def good_event(**overrides: Any) -> dict[str, Any]:
    event = KEYS.nip98_event(URL, "POST", BODY, created_at=NOW)
    event.update(overrides)
    return event


def resign(event: dict[str, Any], keys: Keys = KEYS) -> dict[str, Any]:
    """Recompute the id and signature after a change, so only the changed field is wrong."""
    return keys.sign_event(event["kind"], event["tags"], event["content"], event["created_at"])


def refusal(encoded: str, request: HttpRequestFacts = REQUEST, now: float = NOW) -> str:
    with pytest.raises(Unauthorized) as caught:
        verify_nip98(encoded, request, now)
    assert caught.value.status_code == 401
    return caught.value.code


def with_tag(event: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    tags = [tag if tag[0] != name else [name, value] for tag in event["tags"]]
    return resign({**event, "tags": tags})


def test_a_valid_event_is_accepted_with_extra_tags() -> None:
    event = KEYS.nip98_event(URL, "POST", BODY, created_at=NOW, extra_tags=[["nonce", "abc"]])
    verified = verify_nip98(encode(event), REQUEST, NOW)
    assert verified.pubkey == KEYS.pubkey
    assert verified.event_id == event["id"]


def test_no_body_needs_no_payload_tag() -> None:
    event = KEYS.nip98_event(URL, "GET", b"", created_at=NOW)
    assert verify_nip98(encode(event), HttpRequestFacts(URL, "GET", b""), NOW).pubkey == KEYS.pubkey


def single_tamperings() -> dict[str, tuple[str, HttpRequestFacts, float]]:
    """Each single tampering and the code it must be refused with."""
    event = good_event()
    bad_sig = event["sig"][:-2] + ("00" if event["sig"][-2:] != "00" else "01")
    other_pubkey_same_id = {**event, "pubkey": OTHER.pubkey}
    other_pubkey_resigned_id = {**event, "pubkey": OTHER.pubkey}
    other_pubkey_resigned_id["id"] = event_id(OTHER.pubkey, NOW, event["kind"], event["tags"], "")
    return {
        "signature": (encode({**event, "sig": bad_sig}), REQUEST, NOW),
        "id": (encode({**event, "id": "0" * 64}), REQUEST, NOW),
        "pubkey (id not recomputed)": (encode(other_pubkey_same_id), REQUEST, NOW),
        "pubkey (id recomputed)": (encode(other_pubkey_resigned_id), REQUEST, NOW),
        "pubkey off the curve": (
            encode({**event, "pubkey": "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34"}),
            REQUEST,
            NOW,
        ),
        "kind": (encode(resign({**event, "kind": 1})), REQUEST, NOW),
        "u other path": (encode(with_tag(event, "u", URL.replace("/api/estimate", "/api/jobs"))), REQUEST, NOW),
        "u other query": (encode(with_tag(event, "u", URL.replace("request=hi", "request=ho"))), REQUEST, NOW),
        "u other host": (encode(with_tag(event, "u", URL.replace("api.example.com", "evil.example.com"))), REQUEST, NOW),
        "method": (encode(with_tag(event, "method", "GET")), REQUEST, NOW),
        "payload": (encode(with_tag(event, "payload", "ab" * 32)), REQUEST, NOW),
        "created_at too old": (encode(event), REQUEST, NOW + 61),
        "created_at in the future": (encode(event), REQUEST, NOW - 61),
    }


EXPECTED_CODES = {
    "signature": "nip98_bad_signature",
    "id": "nip98_id_mismatch",
    "pubkey (id not recomputed)": "nip98_id_mismatch",
    "pubkey (id recomputed)": "nip98_bad_signature",
    "pubkey off the curve": "nip98_invalid_pubkey",
    "kind": "nip98_wrong_kind",
    "u other path": "nip98_url_mismatch",
    "u other query": "nip98_url_mismatch",
    "u other host": "nip98_url_mismatch",
    "method": "nip98_method_mismatch",
    "payload": "nip98_payload_mismatch",
    "created_at too old": "nip98_expired",
    "created_at in the future": "nip98_from_future",
}


@pytest.mark.parametrize("tampering", sorted(EXPECTED_CODES))
def test_each_single_tampering_is_refused_with_its_code(tampering: str) -> None:
    encoded, request, now = single_tamperings()[tampering]
    assert refusal(encoded, request, now) == EXPECTED_CODES[tampering]


def test_the_window_edges_are_inclusive() -> None:
    event = good_event()
    assert verify_nip98(encode(event), REQUEST, NOW + 60).pubkey == KEYS.pubkey
    assert verify_nip98(encode(event), REQUEST, NOW - 60).pubkey == KEYS.pubkey


def test_a_body_without_payload_tag_is_refused() -> None:
    event = resign({**good_event(), "tags": [["u", URL], ["method", "POST"]]})
    assert refusal(encode(event)) == "nip98_missing_tag"


@pytest.mark.parametrize(
    ("encoded", "code"),
    [
        ("A" * 9000, "nip98_header_too_large"),
        ("not base64!!", "nip98_invalid_base64"),
        (base64.b64encode(b"{not json").decode(), "nip98_invalid_json"),
        (base64.b64encode(b"\xff\xfe").decode(), "nip98_invalid_json"),
        (base64.b64encode(b"[1,2,3]").decode(), "nip98_invalid_json"),
        (base64.b64encode(b"[" * 3000 + b"]" * 3000).decode()[:8000], "nip98_invalid_json"),
        (encode({"kind": 27235}), "nip98_missing_field"),
        (encode({**good_event(), "created_at": "1790000000"}), "nip98_wrong_type"),
        (encode({**good_event(), "created_at": 1.5}), "nip98_wrong_type"),
        (encode({**good_event(), "kind": True}), "nip98_wrong_type"),
        (encode({**good_event(), "tags": [["u", 5]]}), "nip98_wrong_type"),
        (encode({**good_event(), "tags": "u"}), "nip98_wrong_type"),
        (encode({**good_event(), "tags": [[]]}), "nip98_wrong_type"),
        (encode({**good_event(), "sig": "xyz"}), "nip98_malformed_field"),
        (encode({**good_event(), "id": "AB" * 32}), "nip98_malformed_field"),
        (encode(resign({**good_event(), "tags": [["method", "POST"]]})), "nip98_missing_tag"),
        (encode(resign({**good_event(), "tags": [*good_event()["tags"], ["u", URL]]})), "nip98_duplicate_tag"),
    ],
)
def test_garbage_headers_get_distinct_401_codes(encoded: str, code: str) -> None:
    assert refusal(encoded) == code


def test_a_lone_surrogate_is_a_401_not_a_500() -> None:
    event = good_event()
    text = json.dumps(event).replace('"content": ""', '"content": "\\ud800"')
    assert refusal(base64.b64encode(text.encode()).decode()) == "nip98_malformed_field"


# --- tokens ------------------------------------------------------------------------------


def test_a_token_round_trips_and_expires() -> None:
    signer = TokenSigner("secret-one")
    token = signer.issue(KEYS.pubkey, NOW + 100)
    assert signer.verify(token, NOW).pubkey == KEYS.pubkey
    with pytest.raises(Unauthorized) as caught:
        signer.verify(token, NOW + 100)
    assert caught.value.code == "token_expired"


def test_forged_and_other_secret_tokens_are_refused() -> None:
    signer = TokenSigner("secret-one")
    token = signer.issue(KEYS.pubkey, NOW + 100)
    forged_pubkey = token.replace(KEYS.pubkey, OTHER.pubkey)
    forged_expiry = token.replace(str(NOW + 100), str(NOW + 10_000))
    codes = {}
    for name, candidate in {
        "pubkey": forged_pubkey,
        "expiry": forged_expiry,
        "other secret": TokenSigner("secret-two").issue(KEYS.pubkey, NOW + 100),
        "other secret, our key id": TokenSigner("secret-two")
        .issue(KEYS.pubkey, NOW + 100)
        .replace(TokenSigner("secret-two").signing_key_id, signer.signing_key_id),
        "garbage": "hello",
        "long": "nt1." + "a" * 500,
    }.items():
        with pytest.raises(Unauthorized) as caught:
            signer.verify(candidate, NOW)
        codes[name] = caught.value.code
    assert codes == {
        "pubkey": "token_bad_signature",
        "expiry": "token_bad_signature",
        "other secret": "token_unknown_key",
        "other secret, our key id": "token_bad_signature",
        "garbage": "token_malformed",
        "long": "token_malformed",
    }


def test_rotation_old_tokens_still_verify_new_ones_use_the_first_secret() -> None:
    old = TokenSigner("old-secret").issue(KEYS.pubkey, NOW + 100)
    rotated = TokenSigner("new-secret,old-secret")
    assert rotated.verify(old, NOW).pubkey == KEYS.pubkey
    new = rotated.issue(KEYS.pubkey, NOW + 100)
    assert TokenSigner("new-secret").verify(new, NOW).pubkey == KEYS.pubkey
    with pytest.raises(Unauthorized):
        TokenSigner("old-secret").verify(new, NOW)


# --- tiers -------------------------------------------------------------------------------

DAY = 86_400


def test_tiers_need_every_threshold() -> None:
    settings = Settings()
    start = NOW - 40 * DAY
    assert Profile(KEYS.pubkey).tier(settings, NOW) == "new"
    assert Profile(KEYS.pubkey, start, paid_sats=10**9, paid_requests=1).tier(settings, NOW) == "new"
    assert Profile(KEYS.pubkey, NOW, paid_sats=10**9, paid_requests=1000).tier(settings, NOW) == "new"
    assert Profile(KEYS.pubkey, start, paid_sats=1_000, paid_requests=3).tier(settings, NOW) == "established"
    assert Profile(KEYS.pubkey, start, paid_sats=20_000, paid_requests=20).tier(settings, NOW) == "trusted"
    assert Profile(KEYS.pubkey, start, paid_sats=200_000, paid_requests=100).tier(settings, NOW) == "elite"


def test_a_pin_wins_over_history() -> None:
    settings = Settings()
    rich = Profile(KEYS.pubkey, NOW - 40 * DAY, paid_sats=200_000, paid_requests=100, pinned_tier="new")
    assert rich.tier(settings, NOW) == "new"
    assert rich.history_tier(settings, NOW) == "elite"
    assert Profile(KEYS.pubkey, pinned_tier="trusted").tier(settings, NOW) == "trusted"


def test_record_paid_action_is_an_update_with_add_and_if_not_exists() -> None:
    action = record_paid_action(KEYS.pubkey, 21, NOW)
    update = action["Update"]
    assert update["Key"] == {"pk": f"IDENTITY#{KEYS.pubkey}", "sk": "PROFILE"}
    named = {placeholder: attribute for placeholder, attribute in update["ExpressionAttributeNames"].items()}
    expression = update["UpdateExpression"]
    for placeholder, attribute in named.items():
        expression = expression.replace(placeholder + " ", attribute + " ").replace(placeholder + ",", attribute + ",")
        expression = expression.replace(f"if_not_exists({placeholder},", f"if_not_exists({attribute},")
    for placeholder, value in update["ExpressionAttributeValues"].items():
        expression = expression.replace(placeholder, repr(value))
    assert "ADD paid_sats 21, paid_requests 1" in expression
    assert f"first_seen_at = if_not_exists(first_seen_at, {int(NOW)})" in expression
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            record_paid_action(KEYS.pubkey, bad, NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        record_paid_action(KEYS.npub, 1, NOW)
