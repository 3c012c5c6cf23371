"""An Idempotency-Key replays the first answer to the caller that sent it, and to no one else: the
answer of POST /api/sessions carries the session's token, the one of POST /api/jobs the job's id
(which claims its refund). Found black-box: a second identity sending the first one's key and body
got the first one's session token back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api_client import Answer
from tests.integration.payments.conftest import Lab
from timmy.identity.signer import Keys

ROUTES = [("/api/sessions", {"amount_sats": 100}, "session_id"), ("/api/jobs", {"request": "Write a haiku about keys"}, "job_id")]


def _from(lab: Lab, source_ip: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> Answer:
    """A POST as it arrives from `source_ip` (ApiClient always calls from 127.0.0.1)."""
    header_list = [("host", "127.0.0.1:3000"), ("content-type", "application/json"), *headers.items()]
    status, answer_headers, answer_body = lab.api.gateway.handle("POST", path, header_list, json.dumps(body).encode(), source_ip)
    return Answer(status, {k.lower(): v for k, v in answer_headers}, answer_body)


@pytest.mark.parametrize(("path", "body", "id_field"), ROUTES, ids=["sessions", "jobs"])
def test_a_key_replays_the_first_answer_to_its_caller_only(lab: Lab, path: str, body: dict[str, Any], id_field: str) -> None:
    key = {"idempotency-key": "my-first-one"}
    alice, bob = lab.bearer(Keys.generate().pubkey, "new"), lab.bearer(Keys.generate().pubkey, "new")
    first = lab.api.post(path, json_body=body, headers={**alice, **key})
    assert first.status == 201, first.body
    assert lab.api.post(path, json_body=body, headers={**alice, **key}).json == first.json  # her retry: her answer
    answers = [
        lab.api.post(path, json_body=body, headers={**bob, **key}),  # another identity
        lab.api.post(path, json_body=body, headers=key),  # an anonymous caller
    ]
    anonymous = _from(lab, "198.51.100.7", path, body, key)
    assert _from(lab, "198.51.100.7", path, body, key).json == anonymous.json  # an anonymous retry from the same address
    answers.append(_from(lab, "203.0.113.9", path, body, key))  # another anonymous address
    for answer in answers:
        assert answer.status == 201, answer.body
        assert answer.json[id_field] != first.json[id_field]  # its own session (and token) or job, never hers
