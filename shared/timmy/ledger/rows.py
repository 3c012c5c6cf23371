"""A use case's row on the single table, written and read from its dataclass in one place.

A row is a frozen dataclass that names its kind and the field that identifies it, in its header
(`class Job(Row, kind="job", id_field="job_id")`): its `type` is the kind, its key is
`row_key(kind, id)`, one item per id. While it is open it may also name its sparse index entry
(gsi1, which the sweepers page through). Its fields are stored under their own names, but
`status`, which is stored as `state` (what `Batch.transition` conditions on); an absent optional
field (None) is not stored. A float field is an instant, stored as the ledger stores instants
(`decimal_seconds`); an enum is stored as its value. Reading converts back by the field's type, and
a field the item lacks takes its default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any, ClassVar, Self

from timmy.ledger.ledger import decimal_seconds

STORED_NAMES = {"status": "state"}


def row_key(kind: str, id_: str) -> tuple[str, str]:
    """The key of the one row of `kind` identified by `id_`: (`KIND#id`, `KIND`)."""
    return f"{kind.upper()}#{id_}", kind.upper()


class Row:
    """Base of a dataclass kept as one item: `item()` writes it, `from_item` reads it back."""

    row_type: ClassVar[str]
    id_field: ClassVar[str]

    def __init_subclass__(cls, *, kind: str, id_field: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.row_type, cls.id_field = kind, id_field

    @classmethod
    def key_of(cls, id_: str) -> tuple[str, str]:
        """The key of the row identified by `id_`."""
        return row_key(cls.row_type, id_)

    def key(self) -> tuple[str, str]:
        return self.key_of(getattr(self, self.id_field))

    def index_entry(self) -> tuple[str, str] | None:
        """The (gsi1pk, gsi1sk) of an open row, listed for a sweeper; None when it is not listed."""
        return None

    def item(self) -> dict[str, Any]:
        """The row as the table stores it."""
        pk, sk = self.key()
        item: dict[str, Any] = {"pk": pk, "sk": sk, "type": self.row_type}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is not None:
                item[STORED_NAMES.get(field.name, field.name)] = _stored(value)
        if (entry := self.index_entry()) is not None:
            item["gsi1pk"], item["gsi1sk"] = entry
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Self:
        """The row an item holds (the inverse of `item()`)."""
        values = {}
        for name, (read, optional) in _readers(cls).items():
            stored = item.get(STORED_NAMES.get(name, name))
            if stored is not None:
                values[name] = read(stored)
            elif optional:
                values[name] = None
        return cls(**values)


def _stored(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, float):
        return decimal_seconds(value)
    return value


_READERS: dict[type, dict[str, tuple[Any, bool]]] = {}


def _readers(cls: type) -> dict[str, tuple[Any, bool]]:
    """Each field's conversion from its stored form, by its declared type, and whether it is
    optional (`X | None`: absent reads as None; read as `X` otherwise). Worked out once per class."""
    if cls in _READERS:
        return _READERS[cls]
    hints = typing.get_type_hints(cls)
    readers = {}
    for field in dataclasses.fields(cls):
        hint, optional = hints[field.name], False
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            (hint,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            optional = True
        readers[field.name] = (typing.get_origin(hint) or hint, optional)  # int, float, str, dict, an enum
    _READERS[cls] = readers
    return readers
