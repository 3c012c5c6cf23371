"""Issue 14's reproductions through the local gateway's socket, as a client sends them."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.test_input_hardening import ADMIN, BODY_ROUTES, JSON_SPELLINGS, NOT_JSON


def test_json_in_any_letter_case_is_json_and_other_types_are_a_400(stack: Any) -> None:
    for method, path, body, headers in BODY_ROUTES:
        for content_type in JSON_SPELLINGS:
            answer = stack.request(method, path, body=body, headers={**headers, "content-type": content_type})
            assert answer.status == 200, (path, content_type, answer.body)
        for content_type in NOT_JSON:
            for sent in (headers, {}):
                answer = stack.request(method, path, body=b"", headers={**sent, "content-type": content_type})
                assert answer.status == 400, (path, content_type, answer.body)
                assert answer.json()["error"]["code"] == "unsupported_content_type"


@pytest.mark.parametrize("sent", [ADMIN, {}])
def test_no_5xx_for_any_content_type_on_a_body_route(stack: Any, sent: dict[str, str]) -> None:
    odd = ["", ";", "application/json; charset", "APPLICATION/JSON ;", "*/*", "application/json, text/plain", "x" * 4_000]
    for method, path, body, _ in BODY_ROUTES:
        for content_type in odd:
            for payload in (body, ""):
                answer = stack.request(method, path, body=payload, headers={**sent, "content-type": content_type})
                assert answer.status < 500, (path, content_type, payload, answer.body)
                assert len(answer.body) < 1_000
