"""Field types the features' request models share: numbers that fit the database's columns,
and partial updates that refuse an explicit `null` where nothing can be empty.

A value a column cannot hold (an id past bigint, a limit past integer, a negative offset)
is refused when the request is validated, with a 400 naming the field, instead of failing
inside a statement as a 500. They are `annotated_types` constraints, which pydantic and
FastAPI both read, so the same type serves a body field, a query or a path parameter.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from annotated_types import Ge, Le
from pydantic import BaseModel, model_validator

INT32_MAX = 2**31 - 1  # PostgreSQL `integer`
INT64_MAX = 2**63 - 1  # PostgreSQL `bigint`

Count = Annotated[int, Ge(1), Le(INT32_MAX)]  # a limit: requests per minute, tokens, slots
RowId = Annotated[int, Ge(1), Le(INT64_MAX)]  # a bigint identity: message ids
Offset = Annotated[int, Ge(0), Le(INT64_MAX)]


class Patch(BaseModel):
    """A partial update: a field left out keeps its value. `null` clears a field only where
    the field may be empty (named in `nullable`); elsewhere it is refused, since it would
    otherwise reach a NOT NULL column."""

    nullable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _no_null(self) -> Patch:
        for name in sorted(self.model_fields_set - self.nullable):
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep its value")
        return self
