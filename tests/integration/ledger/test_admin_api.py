"""The operator's routes: audit, pool top-up, grants — and every bad call refused, nothing booked."""

from __future__ import annotations

import base64
import json

import pytest

from tests.api_client import ApiClient
from timmy_http.services import Services

ADMIN = {"authorization": "Bearer test-admin-key"}


def test_pool_topup_moves_equity_into_the_pool_once_per_idempotency_key(api: ApiClient) -> None:
    headers = {**ADMIN, "idempotency-key": "donation-1"}
    first = api.post("/api/admin/pool/topup", json_body={"amount_sats": 500, "note": "thanks"}, headers=headers)
    again = api.post("/api/admin/pool/topup", json_body={"amount_sats": 500, "note": "thanks"}, headers=headers)
    assert first.status == again.status == 200
    assert first.json == again.json and first.json["pool"]["balance_sats"] == 10_500
    assert api.get("/api/pool").json["balance_sats"] == 10_500
    reordered = api.post("/api/admin/pool/topup", body='{ "note":"thanks",  "amount_sats":500 }', headers=headers)
    assert reordered.json == first.json  # the same JSON value, serialised differently, is the same request
    reused = api.post("/api/admin/pool/topup", json_body={"amount_sats": 7}, headers=headers)
    assert (reused.status, reused.error_code) == (409, "idempotency_key_reused")


def test_audit_reports_every_check_by_name(api: ApiClient) -> None:
    api.post("/api/admin/pool/topup", json_body={"amount_sats": 5}, headers=ADMIN)
    answer = api.get("/api/admin/audit", headers=ADMIN)
    assert answer.status == 200 and answer.json["ok"] is True
    names = [check["name"] for check in answer.json["checks"]]
    assert names == [
        "balanced",
        "non_negative",
        "accounts_match_transfers",
        "daily_budgets",
        "grants_match_subsidies",
        "applied_once",
        "well_formed",
    ]


def test_grants_lists_a_days_rows_page_by_page(api: ApiClient, services: Services) -> None:
    from timmy.identity.caller import Caller

    caller = Caller("a" * 64, "elite")
    for index in range(3):
        services.free_tier.decide_and_reserve(caller, 10, f"r{index}")
        day = services.free_tier.record_grant(caller.pubkey, f"r{index}", 4, 10).day  # the reservations' UTC day
    first = api.get(f"/api/admin/grants?day={day}&limit=2", headers=ADMIN).json
    assert len(first["grants"]) == 2 and first["next_cursor"]
    second = api.get(f"/api/admin/grants?day={day}&limit=2&cursor={first['next_cursor']}", headers=ADMIN).json
    assert len(second["grants"]) == 1 and second["next_cursor"] is None
    assert {g["request_hash"] for g in first["grants"] + second["grants"]} == {"r0", "r1", "r2"}
    assert api.get("/api/admin/grants?day=2020-01-01", headers=ADMIN).json["grants"] == []
    foreign = base64.urlsafe_b64encode(json.dumps({"pk": "ACCOUNT#pool", "sk": "ACCOUNT"}).encode()).decode()
    for bad in ("day=yesterday", "day=2026-02-30", "day=", "limit=0", "limit=9999"):
        answer = api.get(f"/api/admin/grants?{bad}", headers=ADMIN)
        assert answer.status == 400 and "error" in answer.json, bad
    for never_given_out in ("cursor=%%%", f"cursor={foreign}"):  # a string, as the spec says, but no cursor of ours
        answer = api.get(f"/api/admin/grants?{never_given_out}", headers=ADMIN)
        assert (answer.status, answer.error_code) == (422, "invalid_cursor"), never_given_out


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_admin_key"),
        ({"authorization": "Bearer wrong"}, "invalid_admin_key"),
        ({"authorization": "Basic dGVzdA=="}, "missing_admin_key"),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/admin/audit"), ("POST", "/api/admin/pool/topup"), ("GET", "/api/admin/grants")])
def test_admin_routes_need_the_admin_key(api: ApiClient, headers: dict[str, str], code: str, method: str, path: str) -> None:
    answer = api.request(method, path, json_body={"amount_sats": 5} if method == "POST" else None, headers=headers)
    assert (answer.status, answer.error_code) == (401, code)
    assert api.get("/api/pool").json["balance_sats"] == 10_000


@pytest.mark.parametrize(
    "body",
    [
        {"amount_sats": -5},
        {"amount_sats": 0},
        {"amount_sats": 1.5},
        {"amount_sats": "100"},
        {"amount_sats": 10**30},
        {"amount_sats": True},
        {"note": "no amount"},
        {"amount_sats": 5, "note": "x" * 501},
        {"amount_sats": 5, "notes": "a typo"},
        [],
    ],
)
def test_bad_topups_are_400_and_book_nothing(api: ApiClient, body: object) -> None:
    answer = api.post("/api/admin/pool/topup", json_body=body, headers=ADMIN)
    assert answer.status == 400 and set(answer.json) == {"error"}, answer.json
    assert answer.json["error"]["message"]
    assert api.get("/api/pool").json["balance_sats"] == 10_000


def test_a_topup_that_is_not_json_is_400(api: ApiClient) -> None:
    for raw in (b"{not json", b"\xff\xfe\x00"):
        answer = api.post("/api/admin/pool/topup", body=raw, headers=ADMIN)
        assert answer.status == 400, raw
    assert api.get("/api/pool").json["balance_sats"] == 10_000


def test_a_store_that_does_not_answer_is_a_503_in_the_error_shape(api: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from timmy_http.services import reset_services

    monkeypatch.setenv("TABLE_NAME", "timmy-no-such-table")
    reset_services()
    for answer in (api.get("/api/pool"), api.get("/api/admin/audit", headers=ADMIN)):
        assert (answer.status, answer.error_code) == (503, "dependency_unavailable")
        assert "Traceback" not in answer.body.decode()


def test_a_topup_whose_answer_failed_after_booking_is_not_booked_twice(
    api: ApiClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import EndpointConnectionError

    real_status = services.free_tier.pool_status
    calls = {"n": 0}

    def flaky_status() -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the read after the booking: the answer is lost, Powertools forgets the key
            raise EndpointConnectionError(endpoint_url="http://dynamodb")
        return real_status()

    monkeypatch.setattr(services.free_tier, "pool_status", flaky_status)
    headers = {**ADMIN, "idempotency-key": "donation-7"}
    assert api.get("/api/pool").json["balance_sats"] == 10_000
    assert api.post("/api/admin/pool/topup", json_body={"amount_sats": 500}, headers=headers).status == 503
    retry = api.post("/api/admin/pool/topup", json_body={"amount_sats": 500}, headers=headers)
    assert retry.status == 200 and retry.json["pool"]["balance_sats"] == 10_500
    conflicting = api.post("/api/admin/pool/topup", json_body={"amount_sats": 501}, headers=headers)
    assert conflicting.status == 409


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml", "application/vnd.api+json"])
def test_a_body_that_is_not_sent_as_json_is_a_400_naming_the_content_type(api: ApiClient, content_type: str) -> None:
    for method, path in (("POST", "/api/admin/pool/topup"), ("POST", "/api/estimate"), ("PUT", f"/api/admin/identities/{'a' * 64}")):
        answer = api.request(method, path, body=b'{"amount_sats": 5}', headers={**ADMIN, "content-type": content_type})
        assert (answer.status, answer.error_code) == (400, "unsupported_content_type"), (path, answer.body)
        assert "application/json" in answer.json["error"]["message"]
    assert api.get("/api/pool").json["balance_sats"] == 10_000


@pytest.mark.parametrize("body", [b'{"amount_sats": ' + b"9" * 5000 + b"}", b"[" * 20_000 + b"]" * 20_000, b"{not json"])
def test_json_that_python_refuses_is_a_400_not_a_500(api: ApiClient, body: bytes) -> None:
    for path in ("/api/admin/pool/topup", "/api/estimate"):
        answer = api.post(path, body=body, headers=ADMIN)
        assert (answer.status, answer.error_code) == (400, "invalid_json"), path
    assert api.get("/api/pool").json["balance_sats"] == 10_000
