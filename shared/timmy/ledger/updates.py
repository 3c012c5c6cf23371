"""Typed write actions for `Store.transact` and `Store.put` that move no sats (an identity's
profile and paid history): like the ledger's own, their expression text is written here, in the
ledger, never by a use case (no boto3 import, so the domain builds them cheaply).

Every attribute goes through a name placeholder, so reserved words (`day`, `type`) need no care.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

ITEM_ABSENT = "attribute_not_exists(pk)"  # a put that creates, never overwrites


def update_action(
    key: Mapping[str, str],
    *,
    set_: Mapping[str, Any] | None = None,
    set_if_absent: Mapping[str, Any] | None = None,
    add: Mapping[str, int] | None = None,
    remove: Sequence[str] = (),
) -> dict[str, Any]:
    """An `Update` action: SET `set_`, SET `set_if_absent` where the attribute is not set yet,
    ADD `add` (counters start at 0), REMOVE `remove`."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def name(attribute: str) -> str:
        placeholder = f"#n{len(names)}"
        names[placeholder] = attribute
        return placeholder

    def value(v: Any) -> str:
        placeholder = f":v{len(values)}"
        values[placeholder] = v
        return placeholder

    sets = [f"{name(a)} = {value(v)}" for a, v in (set_ or {}).items()]
    for attribute, v in (set_if_absent or {}).items():
        n = name(attribute)
        sets.append(f"{n} = if_not_exists({n}, {value(v)})")
    clauses = []
    if add:
        clauses.append("ADD " + ", ".join(f"{name(a)} {value(v)}" for a, v in add.items()))
    if sets:
        clauses.append("SET " + ", ".join(sets))
    if remove:
        clauses.append("REMOVE " + ", ".join(name(a) for a in remove))
    if not clauses:
        raise ValueError("an update action needs something to change")
    update: dict[str, Any] = {"Key": dict(key), "UpdateExpression": " ".join(clauses), "ExpressionAttributeNames": names}
    if values:
        update["ExpressionAttributeValues"] = values
    return {"Update": update}
