"""Field types the HTTP models share, each defined once: what the spec says and what the server
takes come from the same annotation.

Whole numbers: JSON has one number type, and JSON Schema's `integer` is any number without a
fraction, so `518.0` is the integer 518 (accepted as 518); `518.5`, `"518"` and `true` are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, StrictInt, StrictStr, WithJsonSchema
from pydantic_core import PydanticCustomError


def _integral(value: Any) -> Any:
    """An integral float (`518.0`, `5e2`) as the int it equals; anything else as it came."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


INTEGRAL = BeforeValidator(_integral)
"""Put last in `Annotated[StrictInt, Field(ge=…), INTEGRAL]`: bounds given before it reach the spec as
minimum/maximum (given after, pydantic could only document them under names JSON Schema does not know)."""


def _not_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("not_null", "may be left out but not null")
    return value


NOT_NULL = BeforeValidator(_not_null)
"""On an optional field (`Annotated[X | None, NOT_NULL] = None`): absent is None, an explicit null is
refused, so a schema without `null` (what `WithJsonSchema` or `not_null_schema` says) is the truth."""

WholeNumber = Annotated[StrictInt, INTEGRAL]
"""A JSON integer: an int, or a float without a fraction (never a string or a boolean)."""


# A Lightning address (name@domain) for refunds, as timmy.ports.lnurl.parse_lightning_address takes
# it (in either case: it lower-cases first): LUD-16's name alphabet; a DNS name of two labels or
# more, each of 1 to 63 characters, none starting or ending with a hyphen, the last (the top-level
# domain) starting with a letter, as every TLD does (no IP literal, no port, no bare `localhost`).
# `invalid_refund_address` otherwise.
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_LAST_LABEL = "[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
REFUND_ADDRESS_SCHEMA = {
    "type": "string",
    "maxLength": 320,
    "pattern": f"^[A-Za-z0-9._+-]{{1,64}}@({_LABEL}\\.)+{_LAST_LABEL}$",
    "description": "a Lightning address (name@domain): refunds are paid to it",
}
RefundAddress = Annotated[StrictStr, WithJsonSchema(REFUND_ADDRESS_SCHEMA)]


def maximum_from_settings(read: Callable[[], int]) -> Callable[[dict[str, Any]], None]:
    """A field's `json_schema_extra` giving the spec the maximum a setting allows (read when the spec
    is built, so it says what this deployment refuses)."""

    def extra(schema: dict[str, Any]) -> None:
        schema["maximum"] = read()

    return extra
