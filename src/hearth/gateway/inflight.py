"""Requests in flight per engine, counted across replicas.

Each replica counts its own requests in memory: taking and giving back a slot is a dict
update, with no round trip on the request path. With Redis, a background task publishes
this replica's counts once a `sync_interval` and reads back the sum of the other replicas'
(one Lua call a second, whatever the traffic), so the balancer sees
`own (exact, now) + others (at most one interval old)`.

Why not INCR/DECR in Redis on every request: the balancer must read every candidate's count
before it picks, so exact shared counts cost a round trip on every request (and a second
one to give the slot back), and Redis trouble would then slow or stop routing. Generations
last seconds, so counts one second old lose little; and each replica spreading its own
requests evenly already keeps the sum even: the others' counts only correct for replicas
whose traffic differs. A replica that dies stops refreshing its entry, which expires after
three intervals (the TTL safety), so its requests never stay counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter

from redis.asyncio import Redis

from hearth.http.background import BackgroundTask

log = logging.getLogger(__name__)

# KEYS[1]: the hash. ARGV: this replica, its TTL in ms, then engine, count pairs.
# Fields: "<replica>" → last heartbeat (ms, Redis's clock); "<replica>\t<engine>" → count.
# Publishes this replica's counts, drops replicas whose heartbeat is older than the TTL,
# and returns engine, count pairs summed over the other live replicas.
_SYNC_LUA = """
local key, me, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local all = redis.call('HGETALL', key)
local stale, mine, beats = {}, {}, {}
for i = 1, #all, 2 do
  local field = all[i]
  local tab = string.find(field, '\\t', 1, true)
  if not tab then beats[field] = tonumber(all[i + 1]) end
end
for i = 1, #all, 2 do
  local field = all[i]
  local tab = string.find(field, '\\t', 1, true)
  local replica = tab and string.sub(field, 1, tab - 1) or field
  if replica == me then
    table.insert(mine, field)
  elseif not beats[replica] or beats[replica] < now - ttl then
    table.insert(stale, field)
  end
end
if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
if #mine > 0 then redis.call('HDEL', key, unpack(mine)) end
redis.call('HSET', key, me, now)
for i = 3, #ARGV, 2 do
  if tonumber(ARGV[i + 1]) > 0 then
    redis.call('HSET', key, me .. '\\t' .. ARGV[i], ARGV[i + 1])
  end
end
redis.call('PEXPIRE', key, ttl * 10)
local sums, out = {}, {}
for i = 1, #all, 2 do
  local field = all[i]
  local tab = string.find(field, '\\t', 1, true)
  if tab then
    local replica = string.sub(field, 1, tab - 1)
    if replica ~= me and beats[replica] and beats[replica] >= now - ttl then
      local engine = string.sub(field, tab + 1)
      sums[engine] = (sums[engine] or 0) + tonumber(all[i + 1])
    end
  end
end
for engine, count in pairs(sums) do
  table.insert(out, engine)
  table.insert(out, count)
end
return out
"""


class InFlight:
    """This replica's counts, plus the other replicas' as last synced."""

    def __init__(self) -> None:
        self.local: Counter[str] = Counter()
        self.others: dict[str, int] = {}

    def acquire(self, engine: str) -> None:
        self.local[engine] += 1

    def release(self, engine: str) -> None:
        self.local[engine] -= 1
        if self.local[engine] <= 0:
            del self.local[engine]

    def count(self, engine: str) -> int:
        return self.local[engine] + self.others.get(engine, 0)

    def start(self) -> None:
        """Nothing to share in a single process."""

    async def close(self) -> None:
        pass


class SharedInFlight(InFlight):
    """Counts shared through Redis by a background sync (see the module docstring)."""

    def __init__(
        self, redis: Redis, *, prefix: str = "hearth:inflight", sync_interval: float = 1.0
    ) -> None:
        super().__init__()
        self.redis = redis
        self.key = prefix
        self.replica = uuid.uuid4().hex[:12]
        self.sync_interval = sync_interval
        self._script = redis.register_script(_SYNC_LUA)
        self._task = BackgroundTask("hearth-inflight-sync")

    def start(self) -> None:
        self._task.start(self._run())

    async def close(self) -> None:
        await self._task.stop()
        with contextlib.suppress(Exception):  # leaving: our entry would expire anyway
            await self.redis.hdel(self.key, self.replica, *(self._field(e) for e in self.local))
        await self.redis.aclose()

    async def sync(self) -> None:
        """Publish this replica's counts; fetch the others'."""
        args: list[str | int] = [self.replica, round(self.sync_interval * 3000)]
        for engine, count in self.local.items():
            args += [engine, count]
        reply = await self._script(keys=[self.key], args=args)
        others: dict[str, int] = {}
        for i in range(0, len(reply), 2):
            engine = reply[i].decode() if isinstance(reply[i], bytes) else reply[i]
            others[engine] = int(reply[i + 1])
        self.others = others

    def _field(self, engine: str) -> str:
        return f"{self.replica}\t{engine}"

    async def _run(self) -> None:
        while True:
            try:
                await self.sync()
            except Exception as exc:  # routing goes on with local counts
                log.warning("in-flight counts not synced: %s", exc)
                self.others = {}
            await asyncio.sleep(self.sync_interval)
