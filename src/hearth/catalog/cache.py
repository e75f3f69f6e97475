"""The catalog's read cache: in Redis when configured (shared by every replica), else in
this process; the same interface either way.

Invalidation is a generation number. Every entry is stored with the generation it was read
under, and every write increments the generation after its transaction commits, so an entry
from before the write no longer matches, on every replica at once (with Redis, the number
is one key they all read). A lookup reads the generation and the entry in one round trip
(MGET); a reader that raced a write stores its entry under the old generation, which nobody
will match again.

Redis is an optimisation here, never a dependency: a command that fails or takes longer
than `timeout` is logged and the caller reads the database. After a failure, lookups skip
Redis for a few seconds, so an outage costs one timeout, not one per page; invalidations
are always tried.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

log = logging.getLogger(__name__)

LOCAL_TTL = 5.0  # bounds what another process's write (the CLI's) leaves stale here
REDIS_TTL = 60.0  # bounds what a lost invalidation (Redis failed mid-write) leaves stale
_RETRY_AFTER = 5.0  # seconds lookups leave Redis alone after it failed
_WARN_EVERY = 30.0  # one warning per outage, not one per read
# What a Redis that is down, frozen or confused raises: the caller reads the database.
_FAILURES = (RedisError, OSError, TimeoutError)


@dataclass(frozen=True)
class Lookup:
    """A cached value (or None) and the generation to store a fresh one under; None when
    the cache cannot be used now and nothing should be stored."""

    value: bytes | None
    generation: int | None


class CatalogCache(ABC):
    @abstractmethod
    async def lookup(self, key: str) -> Lookup: ...

    @abstractmethod
    async def store(self, key: str, generation: int | None, value: bytes) -> None: ...

    @abstractmethod
    async def invalidate(self) -> None:
        """Make every entry stale, for every process sharing the cache."""

    async def close(self) -> None:
        """Release connections (Redis)."""


class LocalCatalogCache(CatalogCache):
    """One process: entries for `ttl` seconds or until the next write here."""

    def __init__(self, ttl: float = LOCAL_TTL) -> None:
        self.ttl = ttl
        self.generation = 0
        self._entries: dict[str, tuple[float, int, bytes]] = {}

    async def lookup(self, key: str) -> Lookup:
        entry = self._entries.get(key)
        if entry is not None and entry[1] == self.generation and entry[0] > time.monotonic():
            return Lookup(entry[2], self.generation)
        return Lookup(None, self.generation)

    async def store(self, key: str, generation: int | None, value: bytes) -> None:
        if generation == self.generation:
            self._entries[key] = (time.monotonic() + self.ttl, generation, value)

    async def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()


class RedisCatalogCache(CatalogCache):
    """Shared by every replica. `prefix` namespaces the keys (tests use one each)."""

    def __init__(
        self,
        redis: Any,
        *,
        timeout: float,
        prefix: str = "hearth:catalog:v1:",
        ttl: float = REDIS_TTL,
    ) -> None:
        self.redis = redis
        self.timeout = timeout
        self.ttl = ttl
        self._generation_key = prefix + "generation"
        self._entry_prefix = prefix + "entry:"
        self._skip_until = 0.0
        self._warned_at = -_WARN_EVERY

    async def lookup(self, key: str) -> Lookup:
        if time.monotonic() < self._skip_until:
            return Lookup(None, None)
        try:
            async with asyncio.timeout(self.timeout):
                generation, entry = await self.redis.mget(
                    self._generation_key, self._entry_prefix + key
                )
        except _FAILURES as exc:
            self._failed("read", exc)
            return Lookup(None, None)
        try:
            current = int(generation or 0)
        except ValueError as exc:  # not ours: someone else wrote the key
            self._failed("read", exc)
            return Lookup(None, None)
        if entry is not None:
            stored, _, value = bytes(entry).partition(b"\n")
            if stored == b"%d" % current:
                return Lookup(value, current)
        return Lookup(None, current)

    async def store(self, key: str, generation: int | None, value: bytes) -> None:
        if generation is None:
            return
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.set(
                    self._entry_prefix + key,
                    b"%d\n" % generation + value,
                    px=int(self.ttl * 1000),
                )
        except _FAILURES as exc:
            self._failed("write", exc)

    async def invalidate(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                await self.redis.incr(self._generation_key)
        except _FAILURES as exc:
            # The write itself has committed; other replicas may serve what they cached
            # before it for up to `ttl` seconds.
            self._failed("invalidate", exc)

    def _failed(self, what: str, exc: Exception) -> None:
        now = time.monotonic()
        self._skip_until = now + _RETRY_AFTER
        if now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "catalog cache: Redis %s failed (%s: %s); reading the database",
                what,
                type(exc).__name__,
                exc,
            )

    async def close(self) -> None:
        await self.redis.aclose()
