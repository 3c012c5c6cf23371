"""Issue 14's reproductions through the in-process API (template routing, real handlers, DynamoDB
Local): content types, the NIP-98 expected URL, messages. The same cases through a socket are in
tests/e2e/test_input_hardening.py."""

from __future__ import annotations

import pytest

from tests.api_client import ApiClient

ADMIN = {"authorization": "Bearer test-admin-key"}
PUBKEY = "a" * 64
BODY_ROUTES = [
    ("POST", "/api/estimate", '{"request": "hi"}', {}),
    ("POST", "/api/admin/pool/topup", '{"amount_sats": 5}', ADMIN),
    ("PUT", f"/api/admin/identities/{PUBKEY}", '{"tier": "trusted"}', ADMIN),
]
JSON_SPELLINGS = ["APPLICATION/JSON", "Application/Json", "application/JSON; charset=utf-8", "application/json;charset=UTF-8"]
NOT_JSON = ["text/plain", "application/xml", "multipart/form-data", "application/x-www-form-urlencoded", "Text/Plain; charset=utf-8"]


@pytest.mark.parametrize("content_type", JSON_SPELLINGS)
def test_json_in_any_letter_case_is_json(api: ApiClient, content_type: str) -> None:
    for method, path, body, headers in BODY_ROUTES:
        answer = api.request(method, path, body=body, headers={**headers, "content-type": content_type})
        assert answer.status == 200, (path, answer.body)
        refused = api.request(method, path, body=body, headers={"content-type": content_type})
        assert refused.status == (200 if not headers else 401), (path, refused.body)


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_an_empty_body_of_another_type_is_a_400_on_every_body_route_with_or_without_the_key(api: ApiClient, content_type: str) -> None:
    for method, path, _, headers in BODY_ROUTES:
        for sent in (headers, {}):
            answer = api.request(method, path, body=b"", headers={**sent, "content-type": content_type})
            assert (answer.status, answer.error_code) == (400, "unsupported_content_type"), (path, sent, answer.body)
            assert set(answer.json["error"]) == {"code", "message"}
            assert "application/json" in answer.json["error"]["message"]
    assert api.get("/api/pool").json["balance_sats"] == 10_000


def test_a_route_without_a_body_model_ignores_the_type_of_an_empty_body(api: ApiClient) -> None:
    # `curl -X POST -d ''` sends an empty form: the token route reads no body, so it answers on the credentials.
    answer = api.post("/api/identity/token", body=b"", headers={"content-type": "application/x-www-form-urlencoded"})
    assert (answer.status, answer.error_code) == (401, "missing_credentials")
    assert api.get("/api/pool", headers={"content-type": "text/plain"}).status == 200


# --- messages: the product's words, bounded, never the input echoed ------------------------------------

PYTHON_WORDS = ("sys.set_int_max_str_digits", "utf-8-sig", "Expecting", "Input should be", "pydantic", "Traceback", "errors.pydantic.dev")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"request": ' + "9" * 5_000 + "}", "invalid_json"),  # Python refuses to convert it, and said so in its words
        ("\ufeff" + '{"request": "hi"}', "invalid_json"),  # a byte order mark: "decode using utf-8-sig"
        ('{"request": "hi",}', "invalid_json"),
        ('{"request": ' + "1" * 4_000 + "}", "invalid_input"),  # a number that parses, of the wrong type
        ('{"request": "hi", "max_output_tokens": ' + "7" * 4_000 + "}", "invalid_input"),  # over the maximum: not echoed
        ('{"request": "hi", "' + "k" * 3_000 + '": 1}', "invalid_input"),  # an unknown field's name is shown cut short
        ('{"request": "hi", "model": "' + "m" * 3_000 + '"}', "unknown_model"),
    ],
    ids=["5000-digit number", "byte order mark", "trailing comma", "number as text", "huge max_output_tokens", "long field", "long model"],
)
def test_messages_are_bounded_in_the_products_words_and_never_echo_the_input(api: ApiClient, body: str, code: str) -> None:
    answer = api.post("/api/estimate", body=body.encode(), headers={"content-type": "application/json"})
    assert (answer.status, answer.error_code) == (400, code), answer.body
    message = answer.json["error"]["message"]
    assert len(message) <= 200, message
    assert not any(word in message for word in PYTHON_WORDS), message
    assert "9999999999" not in message and "7777777777" not in message and "1111111111" not in message, message


def test_a_wrong_admin_body_is_described_in_the_products_words(api: ApiClient) -> None:
    answer = api.post("/api/admin/pool/topup", json_body={"amount_sats": "5", "note": 7, "x": 1}, headers=ADMIN)
    assert (answer.status, answer.error_code) == (400, "invalid_input")
    assert (
        answer.json["error"]["message"] == "'amount_sats' must be a whole number; 'note' must be text; 'x' is not a field of this request"
    )


@pytest.mark.parametrize(("amount", "status"), [(518.0, 200), (5e2, 200), (518.5, 400), ("518", 400), (True, 400)])
def test_integral_floats_are_whole_numbers_as_json_schema_says(api: ApiClient, amount: object, status: int) -> None:
    # Issue 14, the choice made: JSON has one number type and JSON Schema's integer is any number
    # without a fraction, so 518.0 is 518; a fraction, a string or a boolean is refused.
    answer = api.post("/api/admin/pool/topup", json_body={"amount_sats": amount}, headers=ADMIN)
    assert answer.status == status, answer.body
    if status == 200:
        assert answer.json["amount_sats"] == int(amount)  # type: ignore[call-overload]
        assert isinstance(answer.json["amount_sats"], int)


@pytest.mark.parametrize("query", ["request=hi&request=there", "request=hi&max_output_tokens=5&max_output_tokens=6"])
def test_a_query_parameter_given_twice_is_named_as_such(api: ApiClient, query: str) -> None:
    # A repeated parameter reaches validation as a list: it was described as "'request' must be text".
    answer = api.get(f"/api/estimate?{query}")
    assert (answer.status, answer.error_code) == (400, "invalid_input"), answer.body
    assert answer.json["error"]["message"].endswith("is given more than once: send it once"), answer.body
