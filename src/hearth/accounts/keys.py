"""API keys: create (the secret is shown once), list, revoke, and authenticate requests.

A key looks like `hk-1a2b3c4d-<43 characters>`: the prefix identifies it (and is what lists
and logs show), the rest is the secret, stored only as its SHA-256. Authentication looks the
key up by prefix, compares hashes in constant time, and caches the answer for one second:
a revocation on any replica takes effect everywhere within that second, and the database
sees at most one lookup per key per second per replica.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update

from hearth.accounts.models import ApiKey, Group, GroupMember, User
from hearth.accounts.principal import LOCAL_USER, Principal
from hearth.db.session import Database
from hearth.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from hearth.fields import Count
from hearth.gateway.limits import BudgetPeriod, Limits

PREFIX = "hk"
_CACHE_SECONDS = 1.0


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    owner_id: str | None = Field(default=None, max_length=200, description="Default: the caller.")
    team_id: str | None = Field(default=None, max_length=200)
    models: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=1000, description="Allowed models; empty: all."
    )
    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    max_concurrent: Count | None = None
    budget: float | None = Field(default=None, ge=0)
    budget_period: BudgetPeriod | None = None
    cache_responses: bool = Field(
        default=False,
        description="Reuse answers to identical non-streaming, temperature-0 requests.",
    )
    expires_at: datetime | None = None


class KeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    prefix: str
    owner_id: str
    team_id: str | None
    models: list[str] | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    max_concurrent: int | None
    budget: float | None
    budget_period: str | None
    cache_responses: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class KeyCreated(KeyPublic):
    key: str = Field(description="The full key. Shown once; Hearth keeps only its hash.")


@dataclass(frozen=True)
class Caller:
    """An authenticated key, as the gateway needs it on every request."""

    key_id: uuid.UUID | None
    prefix: str
    principal: Principal
    models: frozenset[str] | None
    limits: Limits
    team: tuple[str, Limits] | None = None  # the team the key was made for, and its limits
    cache_responses: bool = False

    @classmethod
    def for_user(cls, principal: Principal) -> Caller:
        """A signed-in user chatting in the web app: no key, no key limits, every model;
        their usage is recorded under their id."""
        return cls(None, "", principal, None, Limits())

    @property
    def subject(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"user:{self.principal.user_id}"

    @property
    def limit_subjects(self) -> list[tuple[str, Limits]]:
        """Whose limits a request of this caller counts against: the key's, its team's."""
        subjects = [(self.subject, self.limits)]
        if self.team is not None and not self.team[1].unlimited:
            subjects.append((f"team:{self.team[0]}", self.team[1]))
        return subjects

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


class ApiKeys:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._cache: dict[str, tuple[float, Caller | None, str]] = {}

    async def create(
        self, principal: Principal, body: KeyCreate, *, everyone: bool = False
    ) -> KeyCreated:
        """Create a key; the response is the only time its secret is shown. Only an
        administrator (or the command line, `everyone`) makes keys for someone else or for a
        team they are not in."""
        if (body.budget is None) != (body.budget_period is None):
            raise InvalidRequest("budget and budget_period go together", param="budget")
        admin = everyone or principal.is_admin
        if body.owner_id not in (None, principal.user_id) and not admin:
            raise Forbidden("Only administrators create keys for other users.")
        if body.team_id and body.team_id not in principal.groups and not admin:
            raise Forbidden("You can only create keys for teams you belong to.")
        prefix = f"{PREFIX}-{secrets.token_hex(4)}"
        secret = secrets.token_urlsafe(32)
        await self._check_exist(body)
        row = ApiKey(
            **body.model_dump(exclude={"owner_id"}),
            prefix=prefix,
            owner_id=body.owner_id or principal.user_id,
            secret_sha256=_digest(secret),
        )
        async with self.database.session() as session:
            session.add(row)
            await session.commit()
            public = KeyPublic.model_validate(row)
        return KeyCreated(**public.model_dump(), key=f"{prefix}-{secret}")

    async def _check_exist(self, body: KeyCreate) -> None:
        """A key for an owner or a team that does not exist would act for nobody: refused
        by name (the command line's own "local" owner aside)."""
        async with self.database.session() as session:
            if body.owner_id not in (None, LOCAL_USER.user_id) and (
                await session.get(User, body.owner_id) is None
            ):
                raise InvalidRequest(f"no user {body.owner_id}", param="owner_id")
            if body.team_id is not None and await session.get(Group, body.team_id) is None:
                raise InvalidRequest(f"no team {body.team_id}", param="team_id")

    async def list(self, principal: Principal, *, everyone: bool = False) -> list[KeyPublic]:
        """The caller's keys (or every key, for an administrator), newest first."""
        query = select(ApiKey).order_by(ApiKey.created_at.desc())
        if not everyone:
            query = query.where(ApiKey.owner_id == principal.user_id)
        async with self.database.session() as session:
            return [KeyPublic.model_validate(k) for k in await session.scalars(query)]

    async def revoke(self, principal: Principal, key: str, *, everyone: bool = False) -> None:
        """Revoke a key by id or prefix; it stops working on every replica within a second."""
        condition = (
            ApiKey.prefix == key if key.startswith(f"{PREFIX}-") else ApiKey.id == _uuid(key)
        )
        query = update(ApiKey).where(condition, ApiKey.revoked_at.is_(None))
        if not everyone:
            query = query.where(ApiKey.owner_id == principal.user_id)
        async with self.database.session() as session:
            result = await session.execute(query.values(revoked_at=datetime.now(UTC)))
            await session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"no active key {key}")

    async def authenticate(self, presented: str) -> Caller:
        """The key's caller, or Unauthenticated (401) for a wrong, revoked or expired key."""
        kind, _, rest = presented.partition("-")
        ident, _, secret = rest.partition("-")  # the secret itself may contain "-"
        prefix = f"{kind}-{ident}"
        if kind != PREFIX or not ident or not secret:
            raise Unauthenticated("Incorrect API key provided.")
        now = time.monotonic()
        cached = self._cache.get(prefix)
        if cached is None or cached[0] < now:
            caller, digest = await self._load(prefix)
            self._cache[prefix] = (now + _CACHE_SECONDS, caller, digest)
            if len(self._cache) > 100_000:  # a flood of made-up prefixes must not grow memory
                self._cache.clear()
        else:
            caller, digest = cached[1], cached[2]
        if caller is None or not hmac.compare_digest(digest, _digest(secret)):
            raise Unauthenticated("Incorrect API key provided.")
        return caller

    async def _load(self, prefix: str) -> tuple[Caller | None, str]:
        # A key acts for its owner: with their role and groups, and not once they are
        # disabled. Keys made at the command line may belong to no account ("local").
        groups = (
            select(func.coalesce(func.array_agg(GroupMember.group_id), []))
            .where(GroupMember.user_id == ApiKey.owner_id)
            .scalar_subquery()
        )
        statement = (
            select(ApiKey, User.role, User.status, groups, Group)
            .outerjoin(User, User.id == ApiKey.owner_id)
            .outerjoin(Group, Group.id == ApiKey.team_id)
            .where(ApiKey.prefix == prefix)
        )
        async with self.database.session() as session:
            found = (await session.execute(statement)).first()
        now = datetime.now(UTC)
        if found is None:
            return None, ""
        row, role, status, group_ids, team = found
        if row.revoked_at is not None or (row.expires_at and row.expires_at <= now):
            return None, ""
        if status != "active" and not (status is None and row.owner_id == LOCAL_USER.user_id):
            # The owner is disabled, pending, or gone (a deleted account's keys are revoked
            # with it; this holds even for one that was not): only the command line's keys
            # belong to no account.
            return None, ""
        limits = _limits(row)
        team_limits = (team.id, _limits(team)) if team is not None else None
        teams = {*group_ids, *((row.team_id,) if row.team_id else ())}
        principal = Principal(row.owner_id, tuple(sorted(teams)), is_admin=role == "admin")
        models = frozenset(row.models) if row.models else None
        caller = Caller(
            row.id, row.prefix, principal, models, limits, team_limits, row.cache_responses
        )
        return caller, row.secret_sha256


def _limits(row: ApiKey | Group) -> Limits:
    return Limits(
        requests_per_minute=row.requests_per_minute,
        tokens_per_minute=row.tokens_per_minute,
        max_concurrent=row.max_concurrent,
        budget=row.budget,
        budget_period=row.budget_period,  # type: ignore[arg-type]
    )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no key {value}") from None
