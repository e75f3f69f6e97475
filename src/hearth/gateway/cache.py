"""An exact-match response cache for non-streaming chat completions at temperature 0.

Opt-in, per API key (`cache_responses`) or per request (header `X-Hearth-Cache: use`).
Entries are scoped to the caller's owner, so one tenant's cached answers are never served to
(or timed by) another. The key is a SHA-256 of the request's canonical JSON: model,
messages, tools and every sampling parameter. Kept in Redis when configured (shared by
replicas, with a TTL), else in an in-process LRU with the same interface.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import orjson

from hearth.engines.protocol import ChatCompletionRequest

CACHE_HEADER = "x-hearth-cache"
_PREFIX = "hearth:cache:"
# Fields that do not change the answer.
_IGNORED = {
    "stream", "stream_options", "user", "safety_identifier", "prompt_cache_key", "metadata",
    "store", "service_tier",
}  # fmt: skip


def cache_key(owner: str, request: ChatCompletionRequest) -> str | None:
    """The entry's key, or None when the request may not be cached: only non-streaming,
    one choice, and an explicit temperature of 0 (an answer worth reusing is a deterministic
    one)."""
    if request.stream or request.temperature != 0:
        return None
    body: dict[str, Any] = request.model_dump(mode="json", exclude_none=True)
    if body.get("n", 1) != 1:
        return None
    canonical = orjson.dumps(
        {k: v for k, v in body.items() if k not in _IGNORED}, option=orjson.OPT_SORT_KEYS
    )
    digest = hashlib.sha256(owner.encode() + b"\0" + canonical).hexdigest()
    return _PREFIX + digest


class ResponseCache(ABC):
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def put(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None:
        """Release connections (Redis)."""


class LocalResponseCache(ResponseCache):
    """One process: the newest `capacity` entries, each for `ttl` seconds."""

    def __init__(self, ttl: float, *, capacity: int = 10_000) -> None:
        super().__init__(ttl)
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def put(self, key: str, value: bytes) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


class RedisResponseCache(ResponseCache):
    """Shared by every replica; Redis expires entries (and evicts under its memory policy)."""

    def __init__(self, redis: Any, ttl: float) -> None:
        super().__init__(ttl)
        self.redis = redis

    async def get(self, key: str) -> bytes | None:
        return await self.redis.get(key)

    async def put(self, key: str, value: bytes) -> None:
        await self.redis.set(key, value, px=int(self.ttl * 1000))

    async def close(self) -> None:
        await self.redis.aclose()
