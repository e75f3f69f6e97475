"""What an exception from PostgreSQL or Redis means for the caller: that dependency is
down (or overloaded), so the answer is 503 with Retry-After in the surface's error shape,
never a 500; and the log says so once per outage, not once per request.

The drivers raise many things for one outage: asyncpg's connection errors, SQLAlchemy's
OperationalError, InterfaceError or a pool timeout, redis-py's ConnectionError, and bare
OSErrors (a refused connection, a missing Unix socket) from either. Bare OSErrors are
told apart by where they were raised: an OSError from inside asyncpg, SQLAlchemy or a
Redis client is that dependency's; any other stays a server error.
"""

from __future__ import annotations

import logging
import time
import traceback

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout
from sqlalchemy import exc as sa

from hearth.errors import DependencyUnavailable

log = logging.getLogger(__name__)

# A dependency counts as recovered after this long without an error from it.
_QUIET_SECONDS = 30.0
_DATABASE_MODULES = ("asyncpg", "sqlalchemy", "psycopg", "hearth.db")
_REDIS_MODULES = ("redis", "hearth.gateway._resp", "hearth.gateway._redis_limits")
# The exception classes an outage may come as (the handlers registered for them pass the
# rest on as server errors).
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    sa.SQLAlchemyError,
    RedisError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def dependency_of(exc: BaseException) -> str | None:
    """ "database", "redis", or None when `exc` is not a dependency's outage."""
    if isinstance(exc, (RedisConnectionError, RedisTimeout)):
        return "redis"
    if isinstance(exc, sa.TimeoutError):  # no pooled connection came free in time
        return "database"
    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated or isinstance(exc, (sa.OperationalError, sa.InterfaceError)):
            return "database"
        return _by_origin(exc.orig) if isinstance(exc.orig, OSError) else None
    if isinstance(exc, OSError):
        return _by_origin(exc)
    if isinstance(
        exc,
        (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, asyncpg.CannotConnectNowError),
    ):
        return "database"
    return None


def _by_origin(exc: BaseException) -> str | None:
    for frame, _ in reversed(list(traceback.walk_tb(exc.__traceback__))):
        module = frame.f_globals.get("__name__", "")
        if module.startswith(_DATABASE_MODULES):
            return "database"
        if module.startswith(_REDIS_MODULES):
            return "redis"
    return None


class Outages:
    """Turns dependency errors into DependencyUnavailable; logs each outage once."""

    def __init__(self) -> None:
        self._last_error: dict[str, float] = {}

    def of(self, exc: BaseException) -> DependencyUnavailable | None:
        dependency = dependency_of(exc)
        if dependency is None:
            return None
        now = time.monotonic()
        last = self._last_error.get(dependency)
        if last is None or now - last > _QUIET_SECONDS:
            log.error("%s unavailable: %s: %s", dependency, type(exc).__name__, exc)
        self._last_error[dependency] = now
        name = "The database" if dependency == "database" else "Redis"
        return DependencyUnavailable(f"{name} is unavailable; try again shortly.")
