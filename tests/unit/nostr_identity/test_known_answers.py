"""Known-answer tests: BIP-340 vectors, a NIP-01 event whose id is known, NIP-19 vectors."""

from __future__ import annotations

import re

import pytest
from coincurve import PrivateKey

from timmy.errors import InvalidInput, Unprocessable
from timmy.identity.nostr import PUBKEY_PATTERN, decode_bech32_key, event_id, npub_from_hex, parse_pubkey, verify_schnorr
from timmy.identity.signer import Keys

NOSTR_PUBKEY_FORM = re.compile(PUBKEY_PATTERN)

# bitcoin/bips bip-0340/test-vectors.csv: (secret key, public key, aux_rand, message, signature)
BIP340_SIGNING = [
    (
        "0000000000000000000000000000000000000000000000000000000000000003",
        "F9308A019258C31049344F85F89D5229B531C845836F99B08601F113BCE036F9",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "E907831F80848D1069A5371B402410364BDF1C5F8307B0084C55F1CE2DCA821525F66A4A85EA8B71E482A74F382D2CE5EBEEE8FDB2172F477DF4900D310536C0",
    ),
    (
        "B7E151628AED2A6ABF7158809CF4F3C762E7160F38B4DA56A784D9045190CFEF",
        "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
        "0000000000000000000000000000000000000000000000000000000000000001",
        "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
        "6896BD60EEAE296DB48A229FF71DFE071BDE413E6D43F917DC8DCF8C78DE33418906D11AC976ABCCB20B091292BFF4EA897EFCB639EA871CFA95F6DE339E4B0A",
    ),
    (
        "C90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B14E5C9",
        "DD308AFEC5777E13121FA72B9CC1B7CC0139715309B086C960E18FD969774EB8",
        "C87AA53824B4D7AE2EB035A2B5BBBCCC080E76CDC6D1692C4B0B62D798E6D906",
        "7E2D58D8B3BCDF1ABADEC7829054F90DDA9805AAB56C77333024B9D0A508B75C",
        "5831AAEED7B44BB74E5EAB94BA9D4294C49BCF2A60728D8B4C200F50DD313C1BAB745879A5AD954A72C45A91C3A51D3C7ADEA98D82F8481E0E1E03674A6F3FB7",
    ),
]

# Verification-only vectors 4 (valid), 5 (public key not on the curve), 6 (has_even_y(R) is false).
BIP340_VERIFY = [
    (
        "D69C3509BB99E412E68B0FE8544E72837DFA30746D8BE2AA65975F29D22DC7B9",
        "4DF3C3F68FCC83B27E9D42C90431A72499F17875C81A599B566C9889B9696703",
        "00000000000000000000003B78CE563F89A0ED9414F5AA28AD0D96D6795F9C6376AFB1548AF603B3EB45C9F8207DEE1060CB71C04E80F593060B07D28308D7F4",
        True,
    ),
    (
        "EEFDEA4CDB677750A420FEE807EACF21EB9898AE79B9768766E4FAA04A2D4A34",
        "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
        "6CFF5C3BA86C69EA4B7376F31A9BCB4F74C1976089B2D9963DA2E5543E17776969E89B4C5564D00349106B8497785DD7D1D713A8AE82B32FA79D5F7FC407D39B",
        False,
    ),
    (
        "DFF1D77F2A671C5F36183726DB2341BE58FEAE1DA2DECED843240F7B502BA659",
        "243F6A8885A308D313198A2E03707344A4093822299F31D0082EFA98EC4E6C89",
        "FFF97BD5755EEEA420453A14355235D382F6472F8568A18B2F057A14602975563CC27944640AC607CD107AE10923D9EF7A73C643E166BE5EBEAFA34B1AC553E2",
        False,
    ),
]


@pytest.mark.parametrize(("secret", "pubkey", "aux", "message", "signature"), BIP340_SIGNING)
def test_bip340_signing_vectors_sign_and_verify(secret: str, pubkey: str, aux: str, message: str, signature: str) -> None:
    assert Keys.from_secret(secret.lower()).pubkey == pubkey.lower()
    produced = PrivateKey(bytes.fromhex(secret)).sign_schnorr(bytes.fromhex(message), bytes.fromhex(aux))
    assert produced.hex() == signature.lower()
    assert verify_schnorr(pubkey.lower(), bytes.fromhex(message), signature.lower())


@pytest.mark.parametrize(("pubkey", "message", "signature", "valid"), BIP340_VERIFY)
def test_bip340_verification_vectors(pubkey: str, message: str, signature: str, valid: bool) -> None:
    assert verify_schnorr(pubkey.lower(), bytes.fromhex(message), signature.lower()) is valid


def test_bip340_a_flipped_message_bit_does_not_verify() -> None:
    _secret, pubkey, _aux, message, signature = BIP340_SIGNING[1]
    flipped = bytearray(bytes.fromhex(message))
    flipped[0] ^= 1
    assert not verify_schnorr(pubkey.lower(), bytes(flipped), signature.lower())


def test_verify_schnorr_never_raises_on_garbage() -> None:
    assert not verify_schnorr("zz" * 32, b"\x00" * 32, "00" * 64)
    assert not verify_schnorr("00" * 32, b"\x00" * 32, "00" * 64)
    assert not verify_schnorr("ab" * 32, b"\x00" * 32, "00" * 63)


# A kind-1 "Hello world" note signed by a third party (nostr_toolkit's test event).
KNOWN_EVENT = {
    "pubkey": "db3ff32b3fb818468b7ea2b91b8d4a0485112746f6384630aa1c4a345e80928f",
    "created_at": 1680610292,
    "kind": 1,
    "tags": [],
    "content": "Hello world",
    "id": "a4d73d7407fa9a5a48fffe67663f8e6938406e7dd5e49464bfe83c59f861877d",
    "sig": "710e945d2e424bfe72815a4a398c11b9bafd2a7f4d37a92a02996bd3b8f3dd7f3da060ee230146241ad2ecfb6932583838153feac47126ac52db346dd1428485",
}


def test_nip01_event_id_of_a_known_event() -> None:
    e = KNOWN_EVENT
    assert event_id(e["pubkey"], e["created_at"], e["kind"], e["tags"], e["content"]) == e["id"]
    assert verify_schnorr(e["pubkey"], bytes.fromhex(e["id"]), e["sig"])


def test_nip01_serialisation_matches_nostr_sdk_for_unicode_and_escapes() -> None:
    nostr_sdk = pytest.importorskip("nostr_sdk")
    keys = nostr_sdk.Keys.generate()
    content = 'naïve "quoted" \\ back\nslash\ttab \u2028 emoji 🐢 </script>'
    tags = [["t", "ünïcode"], ["r", "line\nbreak"]]
    built = nostr_sdk.EventBuilder(nostr_sdk.Kind(1), content).tags([nostr_sdk.Tag.parse(t) for t in tags]).sign_with_keys(keys)
    ours = event_id(keys.public_key().to_hex(), built.created_at().as_secs(), 1, tags, content)
    assert ours == built.id().to_hex()


# NIP-19's own examples.
NIP19_NPUBS = [
    ("npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg", "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"),
    ("npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6", "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"),
]


@pytest.mark.parametrize(("npub", "hex_key"), NIP19_NPUBS)
def test_nip19_npub_vectors(npub: str, hex_key: str) -> None:
    assert npub_from_hex(hex_key) == npub
    assert decode_bech32_key("npub", npub) == hex_key
    assert parse_pubkey(npub) == hex_key
    assert parse_pubkey(hex_key.upper()) == hex_key


def test_nip19_nsec_vector() -> None:
    keys = Keys.from_secret("nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5")
    assert keys.secret_hex == "67dea2ed018072d675f5415ecfaed7d2597555e202d85b3d65ea4e58d2d92ffa"
    assert keys.npub == NIP19_NPUBS[0][0]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5",  # wrong prefix
        "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4",  # 63 digits
        " 7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4",  # a space: not the spec's form
        "Npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg",  # mixed case
        "x" * 500,
        None,
        42,
    ],
)
def test_parse_pubkey_refuses_anything_not_of_the_form_as_400(bad: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_pubkey(bad)
    assert caught.value.code == "invalid_pubkey"
    assert NOSTR_PUBKEY_FORM.fullmatch(bad) is None if isinstance(bad, str) else True


@pytest.mark.parametrize(
    "bad",
    [
        "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptt",  # checksum
        "eefdea4cdb677750a420fee807eacf21eb9898ae79b9768766e4faa04a2d4a34",  # not on the curve
    ],
)
def test_parse_pubkey_refuses_a_well_formed_non_key_as_422(bad: str) -> None:
    assert NOSTR_PUBKEY_FORM.fullmatch(bad)  # the spec's pattern takes it: only the key check can refuse it
    with pytest.raises(Unprocessable) as caught:
        parse_pubkey(bad)
    assert (caught.value.status_code, caught.value.code) == (422, "not_a_key")
