"""Browser sessions: a signed cookie naming a server-side session, and CSRF tokens.

The cookie value is `<token>.<signature>`: 256 random bits and their HMAC under the server
secret. A forged or mangled cookie is refused without touching the database; a real one is
looked up by the token's SHA-256 (what the table stores), with its user and groups, in one
query. Answers are cached for a second, so "sign out everywhere" and a disabled account take
effect on every replica within that second.

CSRF: forms and `fetch` calls that change something send a token derived from the session
(HMAC of the token), checked on every unsafe method. Before a session exists (sign-in and
sign-up forms), a random cookie is doubled in the form instead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from hearth.accounts.models import GroupMember, User, UserSession
from hearth.accounts.principal import Principal
from hearth.db.session import Database

COOKIE = "hearth_session"
CSRF_COOKIE = "hearth_csrf"
_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class SignedIn:
    """The user behind a session, as pages and routes need them."""

    principal: Principal
    email: str
    name: str
    token_sha256: str

    @property
    def user_id(self) -> str:
        return self.principal.user_id


class Sessions:
    def __init__(self, database: Database, secret: bytes, *, lifetime: timedelta) -> None:
        self.database = database
        self.secret = secret
        self.lifetime = lifetime
        self._cache: dict[str, tuple[float, SignedIn | None]] = {}

    async def create(self, user_id: str, *, user_agent: str | None = None) -> str:
        """Start a session; returns the cookie value."""
        token = secrets.token_urlsafe(32)
        async with self.database.session() as session:
            session.add(
                UserSession(
                    token_sha256=_digest(token),
                    user_id=user_id,
                    expires_at=datetime.now(UTC) + self.lifetime,
                    user_agent=(user_agent or "")[:300] or None,
                )
            )
            await session.commit()
        return f"{token}.{self._sign(token)}"

    async def resolve(self, cookie: str | None) -> SignedIn | None:
        """The signed-in user, or None for no, a forged, an expired or a revoked session, or
        a user who is no longer active."""
        token = self._verify(cookie)
        if token is None:
            return None
        key = _digest(token)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] >= now:
            return cached[1]
        groups = (
            select(func.coalesce(func.array_agg(GroupMember.group_id), []))
            .where(GroupMember.user_id == User.id)
            .scalar_subquery()
        )
        statement = (
            select(User.id, User.email, User.name, User.role, groups)
            .join(UserSession, UserSession.user_id == User.id)
            .where(
                UserSession.token_sha256 == key,
                UserSession.revoked_at.is_(None),
                UserSession.expires_at > func.now(),
                User.status == "active",
            )
        )
        async with self.database.read() as session:
            row = (await session.execute(statement)).first()
        signed_in = None
        if row is not None:
            user_id, email, name, role, group_ids = row
            principal = Principal(user_id, tuple(sorted(group_ids)), is_admin=role == "admin")
            signed_in = SignedIn(principal, email, name, key)
        if len(self._cache) > 100_000:
            self._cache.clear()
        self._cache[key] = (now + _CACHE_SECONDS, signed_in)
        return signed_in

    async def revoke(self, cookie: str | None) -> None:
        """Sign this browser out."""
        token = self._verify(cookie)
        if token is not None:
            await self._revoke(UserSession.token_sha256 == _digest(token))
            self._cache.pop(_digest(token), None)

    async def revoke_all(self, user_id: str) -> None:
        """Sign a user out everywhere (also after a password change or a disable)."""
        await self._revoke(UserSession.user_id == user_id)
        self._cache.clear()

    async def _revoke(self, condition) -> None:  # type: ignore[no-untyped-def]
        async with self.database.session() as session:
            await session.execute(
                update(UserSession)
                .where(condition, UserSession.revoked_at.is_(None))
                .values(revoked_at=func.now())
            )
            await session.commit()

    # -- CSRF -------------------------------------------------------------------------------

    def csrf_token(self, cookie: str | None) -> str:
        """The token forms and scripts send back with the session's cookie."""
        token = self._verify(cookie) or ""
        return self._mac(f"csrf:{token}")

    def check_csrf(self, cookie: str | None, presented: str | None) -> bool:
        token = self._verify(cookie)
        if token is None or not presented:
            return False
        return hmac.compare_digest(self._mac(f"csrf:{token}"), presented)

    # -- sealed values (short-lived state in a cookie) --------------------------------------

    def seal(self, data: dict, *, ttl: float) -> str:
        """`data` as a signed, expiring cookie value (readable, not secret: sign-in state)."""
        payload = base64.urlsafe_b64encode(
            json.dumps({**data, "exp": time.time() + ttl}).encode()
        ).decode()
        return f"{payload}.{self._mac(f'sealed:{payload}')}"

    def unseal(self, value: str | None) -> dict | None:
        if not value or len(value) > 4096:
            return None
        payload, _, signature = value.rpartition(".")
        if not payload or not hmac.compare_digest(self._mac(f"sealed:{payload}"), signature):
            return None
        data = json.loads(base64.urlsafe_b64decode(payload))
        return data if data.get("exp", 0) > time.time() else None

    # -- signing ----------------------------------------------------------------------------

    def _sign(self, token: str) -> str:
        return self._mac(f"session:{token}")

    def _verify(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 200:
            return None
        token, _, signature = cookie.partition(".")
        if not token or not hmac.compare_digest(self._sign(token), signature):
            return None
        return token

    def _mac(self, message: str) -> str:
        digest = hmac.new(self.secret, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
