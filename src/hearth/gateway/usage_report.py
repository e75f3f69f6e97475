"""Usage over time for administrators: requests, tokens and cost per day, and who (user,
key) and what (model) used the most. Aggregated in SQL over the usage rows; the BRIN index on
`created_at` keeps a period's scan to its own pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Date, String, cast, func, select

from hearth.db.session import Database
from hearth.gateway.models import UsageRecord

Dimension = Literal["owner", "key", "model", "end_user"]


@dataclass(frozen=True)
class UsageTotals:
    label: str  # a day (YYYY-MM-DD), a user id, a key id or a model
    requests: int
    tokens: int
    cost: float
    errors: int


class UsageReport:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def daily(self, since: datetime) -> list[UsageTotals]:
        """One row per day with usage since `since`, oldest first."""
        day = cast(func.date_trunc("day", UsageRecord.created_at), Date)
        return await self._totals(day, since, order_by_label=True)

    async def top(self, by: Dimension, since: datetime, *, limit: int = 10) -> list[UsageTotals]:
        """The biggest users, keys or models since `since`, by tokens."""
        column = {
            "owner": func.coalesce(UsageRecord.owner_id, "(no account)"),
            "key": func.coalesce(cast(UsageRecord.key_id, String), "(no key)"),
            "model": UsageRecord.model,
            # Applications' own users (the requests' `user`): those that named one.
            "end_user": UsageRecord.end_user,
        }[by]
        only = UsageRecord.end_user.is_not(None) if by == "end_user" else None
        return await self._totals(column, since, limit=limit, where=only)

    async def _totals(  # type: ignore[no-untyped-def]
        self,
        label,
        since: datetime,
        *,
        order_by_label: bool = False,
        limit: int | None = None,
        where=None,
    ) -> list[UsageTotals]:
        tokens = func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens)
        statement = (
            select(
                label.label("label"),
                func.count(),
                func.coalesce(tokens, 0),
                func.coalesce(func.sum(UsageRecord.cost), 0.0),
                func.count().filter(UsageRecord.status >= 400),
            )
            .where(UsageRecord.created_at >= since)
            .group_by(label)
            .order_by(label if order_by_label else tokens.desc())
        )
        if where is not None:
            statement = statement.where(where)
        if limit:
            statement = statement.limit(limit)
        async with self.database.session() as session:
            rows = await session.execute(statement)
            return [
                UsageTotals(str(name), int(n), int(t), float(c), int(e))
                for name, n, t, c, e in rows
            ]
