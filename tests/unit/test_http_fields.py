"""The spec's field definitions say exactly what the server takes (timmy_http.fields)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from timmy.errors import InvalidInput
from timmy.ports.lnurl import parse_lightning_address
from timmy_http.fields import NOT_NULL, REFUND_ADDRESS_SCHEMA, WholeNumber

REFUND_ADDRESS = re.compile(REFUND_ADDRESS_SCHEMA["pattern"])


def server_takes(address: str) -> bool:
    try:
        parse_lightning_address(address)
    except InvalidInput:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(st.from_regex(REFUND_ADDRESS, fullmatch=True).filter(lambda text: len(text) <= 320))
def test_every_refund_address_of_the_specs_form_is_taken(address: str) -> None:
    assert server_takes(address)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aZ09-.@_", max_size=16))
def test_every_refund_address_the_server_takes_is_of_the_specs_form(address: str) -> None:
    if server_takes(address) and address == address.strip():
        assert REFUND_ADDRESS.fullmatch(address)


class _Whole(BaseModel):
    amount: WholeNumber


def test_a_whole_number_is_a_json_integer_with_or_without_a_zero_fraction() -> None:
    assert _Whole(amount=518.0).amount == 518 and _Whole(amount=5e2).amount == 500
    for refused in (518.5, "518", True, float("inf"), float("nan"), None):
        try:
            _Whole(amount=refused)
        except ValidationError:
            continue
        raise AssertionError(f"{refused!r} was taken")


def test_not_null_refuses_an_explicit_null_but_not_an_absent_field() -> None:
    from typing import Annotated

    class Optional(BaseModel):
        value: Annotated[str | None, NOT_NULL] = None

    assert Optional().value is None
    try:
        Optional(value=None)
    except ValidationError as error:
        assert error.errors()[0]["type"] == "not_null"
    else:
        raise AssertionError("null was taken")


def test_a_label_longer_than_dns_allows_or_a_numeric_tld_is_refused_by_both() -> None:
    long_label = "0" * 62 + "-" + "0" * 62  # hypothesis found the spec taking this last label
    for address in (f"a@b.{long_label}", f"a@{'b' * 64}.com", "a@example.123", "a@example.1com", "a\n@example.com", "a@b\n.com"):
        assert not server_takes(address) and not REFUND_ADDRESS.fullmatch(address), address
    for address in ("a@example.com", "a@123.example.io", "a@x.xn--p1ai", f"a@{'b' * 63}.com"):
        assert server_takes(address) and REFUND_ADDRESS.fullmatch(address), address
