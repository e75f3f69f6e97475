"""Concurrency leases in Redis: a replica renews the slots of the requests it is serving,
so a long request keeps its slot past the lease, and a replica killed with SIGKILL frees
its slots within one lease, with a Retry-After that says when. The dead replica is a real
process, killed here; Redis is the suite's."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import textwrap
import time
import uuid

import pytest
from redis.asyncio import Redis

from hearth.errors import RateLimited
from hearth.gateway.limits import Limits, RedisLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"
LEASE = 1.0
# The killed replica's lease: long enough that the refusals below still meet it on a
# loaded machine.
CRASH_LEASE = 3.0
LIMITS = Limits(max_concurrent=2)

# A replica holding two slots of the key until it is killed.
REPLICA = textwrap.dedent(
    """
    import asyncio, sys
    from redis.asyncio import Redis
    from hearth.gateway.limits import Limits, RedisLimiter

    async def main():
        url, prefix, lease = sys.argv[1], sys.argv[2], float(sys.argv[3])
        limiter = RedisLimiter(Redis.from_url(url), prefix=prefix, lease=lease)
        subjects = [("key:k", Limits(max_concurrent=2))]
        held = [await limiter.admit(subjects, estimated_tokens=0) for _ in range(2)]
        print("held", flush=True)
        await asyncio.sleep(120)

    asyncio.run(main())
    """
)


def _limiter(prefix: str) -> RedisLimiter:
    return RedisLimiter(Redis.from_url(REDIS_URL), prefix=prefix, lease=LEASE)


async def _refusal(limiter: RedisLimiter) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        await limiter.admit([("key:k", LIMITS)], estimated_tokens=0)
    return refused.value


def test_a_live_request_keeps_its_slot_past_the_lease() -> None:
    prefix = f"hearth-test:{uuid.uuid4().hex}"

    async def scenario() -> None:
        holder, other = _limiter(prefix), _limiter(prefix)
        try:
            running = [await holder.admit([("key:k", LIMITS)], estimated_tokens=0) for _ in "ab"]
            await asyncio.sleep(LEASE * 2.5)  # renewed all along
            refused = await _refusal(other)
            assert refused.retry_after <= 1.0  # a live holder: a slot frees when it ends
            await holder.settle(running[0], tokens=0, cost=0.0)
            await other.admit([("key:k", LIMITS)], estimated_tokens=0)
            # A dropped admission (a request lost without settling) is renewed no more.
            del running[1]
            gc.collect()
            await asyncio.sleep(LEASE * 1.6)
            await other.admit([("key:k", LIMITS)], estimated_tokens=0)
        finally:
            await holder.close()
            await other.close()

    asyncio.run(scenario())


def test_a_killed_replica_frees_its_slots_within_a_lease() -> None:
    prefix = f"hearth-test:{uuid.uuid4().hex}"
    replica = subprocess.Popen(
        [sys.executable, "-c", REPLICA, REDIS_URL, prefix, str(CRASH_LEASE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert replica.stdout is not None and replica.stdout.readline().strip() == "held"
        time.sleep(CRASH_LEASE * 1.5)  # it renews while it lives
        replica.kill()  # SIGKILL: no settle, no goodbye
        replica.wait()
    finally:
        if replica.poll() is None:
            replica.kill()
        if replica.stdout is not None:
            replica.stdout.close()

    async def scenario() -> None:
        other = _limiter(prefix)
        try:
            await _refusal(other)  # its slots still count, for now
            await asyncio.sleep(CRASH_LEASE / 2)
            # Its renewals have stopped: Retry-After says when its lease ends, and after
            # that wait (not ten minutes) the slot is free.
            refused = await _refusal(other)
            assert 0 < refused.retry_after <= CRASH_LEASE
            await asyncio.sleep(refused.retry_after + 0.05)
            await other.admit([("key:k", LIMITS)], estimated_tokens=0)
        finally:
            await other.close()

    asyncio.run(scenario())
