"""Every route's answer is a pydantic model: documented in the spec (`documented`) and checked when
the answer is shaped (`shaped`), so the spec and the body cannot drift apart. A model forbids fields
it does not name: a field a use case adds without its model is a 500 in the tests, not an
undocumented field in production."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    """Base of the routes' answer models.

    Each is built on its first use (defer_build), not at import: a cold start builds the answer
    models of the route it serves, not every route's of its function."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


def shaped(model: type[Answer], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` checked against `model`, as JSON: the fields it has, and only those (an optional field
    it leaves out stays out; one it sets to None is null)."""
    return model.model_validate(data).model_dump(mode="json", exclude_unset=True)


def documented(model: type[Answer], description: str) -> dict[str, Any]:
    """A success response of a route's `responses`: its description and its model."""
    return {"description": description, "content": {"application/json": {"model": model}}}
