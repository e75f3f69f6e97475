"""In-flight counts shared by replicas through a real Redis (127.0.0.1:6379): each sees its
own requests at once and the others' after a sync; a replica that stops syncing (died)
drops out after its TTL."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from hearth.gateway.inflight import SharedInFlight

REDIS_URL = "redis://127.0.0.1:6379/0"


def test_counts_are_shared_and_a_dead_replica_expires() -> None:
    prefix = f"hearth-test:inflight:{uuid.uuid4().hex}"

    async def main() -> None:
        one = SharedInFlight(Redis.from_url(REDIS_URL), prefix=prefix, sync_interval=0.1)
        two = SharedInFlight(Redis.from_url(REDIS_URL), prefix=prefix, sync_interval=0.1)
        try:
            for _ in range(3):
                one.acquire("gpu")
            two.acquire("gpu")
            two.acquire("cpu")
            assert (one.count("gpu"), two.count("gpu")) == (3, 1)  # own counts: at once
            await one.sync()
            await two.sync()
            await one.sync()
            assert (one.count("gpu"), one.count("cpu")) == (4, 1)
            assert (two.count("gpu"), two.count("cpu")) == (4, 1)
            one.release("gpu")
            await one.sync()
            await two.sync()
            assert two.count("gpu") == 3
            # `one` stops syncing, as a replica that died: gone after 3 intervals.
            await asyncio.sleep(0.35)
            await two.sync()
            assert two.count("gpu") == 1 and two.others == {}
        finally:
            await one.close()
            await two.close()
            async with Redis.from_url(REDIS_URL) as client:
                await client.delete(prefix)

    asyncio.run(main())


def test_redis_being_away_leaves_local_counts() -> None:
    async def main() -> None:
        away = SharedInFlight(Redis.from_url("redis://127.0.0.1:1/0"), sync_interval=0.05)
        away.acquire("gpu")
        away.others = {"gpu": 5}
        away.start()
        await asyncio.sleep(0.2)  # the sync fails, logs, and forgets the others' counts
        assert away.count("gpu") == 1
        await away.close()

    asyncio.run(main())
