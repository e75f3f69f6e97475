"""The catalog's read cache, in this process and in a real Redis (127.0.0.1:6379): reads
are served without the database until a write, and a write on one replica reaches the
other's reads at once. A Redis that is down or frozen costs reads nothing but the cache.

Whether a read reached PostgreSQL is told by the statements its Database sent, so each
test can fail: a cache that cached nothing, or never forgot, is caught either way."""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from redis.asyncio import Redis

from hearth.catalog.cache import CatalogCache, LocalCatalogCache, RedisCatalogCache
from hearth.catalog.schemas import HardwareCreate, HardwareUpdate, ModelCreate
from hearth.catalog.service import Catalog
from hearth.db.session import Database

# Its own database number: other suites flush database 0 between their tests.
REDIS_URL = "redis://127.0.0.1:6379/7"


@asynccontextmanager
async def replica(url: str, cache: CatalogCache) -> AsyncIterator[Catalog]:
    """A Catalog as one Hearth process has it: its own connection pool, the given cache."""
    database = Database(url, pool_size=2)
    try:
        yield Catalog(database, cache)
    finally:
        await cache.close()
        await database.close()


def redis_cache(prefix: str, url: str = REDIS_URL, timeout: float = 0.5) -> RedisCatalogCache:
    redis = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return RedisCatalogCache(redis, timeout=timeout, prefix=prefix)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of the test's own, deleted after it."""
    name = f"hearth-test:catalog:{uuid.uuid4().hex}:"
    yield name

    async def clean() -> None:
        async with Redis.from_url(REDIS_URL) as client:
            keys = [key async for key in client.scan_iter(match=name + "*")]
            if keys:
                await client.delete(*keys)

    asyncio.run(clean())


async def statements_for(catalog: Catalog, read: str) -> int:
    """How many statements one read sent to PostgreSQL."""
    before = catalog.database.statements
    await getattr(catalog, read)()
    return catalog.database.statements - before


def test_in_process_reads_are_cached_until_a_write(database_url: str) -> None:
    async def main() -> None:
        async with replica(database_url, LocalCatalogCache()) as catalog:
            await catalog.create_model(ModelCreate(name="first"))
            assert [m.name for m in await catalog.list_models()] == ["first"]
            assert await statements_for(catalog, "list_models") == 0
            made = await catalog.create_model(ModelCreate(name="second"))
            assert await statements_for(catalog, "list_models") == 1
            assert [m.name for m in await catalog.list_models()] == ["first", "second"]
            await catalog.get_model(made.id)
            before = catalog.database.statements
            assert (await catalog.get_model(made.id)).name == "second"
            assert catalog.database.statements == before

    asyncio.run(main())


def test_a_write_on_one_replica_reaches_the_other_through_redis(
    database_url: str, prefix: str
) -> None:
    async def main() -> None:
        async with (
            replica(database_url, redis_cache(prefix)) as one,
            replica(database_url, redis_cache(prefix)) as two,
        ):
            gpu = await one.create_hardware(HardwareCreate(name="1xL4", on_demand_per_hour=0.8))
            assert [h.name for h in await one.list_hardware()] == ["1xL4"]
            # The other replica reads what the first cached: no statement of its own.
            assert await statements_for(two, "list_hardware") == 0
            assert await statements_for(two, "list_deployments") == 1
            assert await statements_for(one, "list_deployments") == 0

            # A write on `two` (a price, which deployments carry too) reaches `one` at once.
            await two.update_hardware(gpu.id, HardwareUpdate(on_demand_per_hour=0.95))
            (fresh,) = await one.list_hardware()
            assert fresh.on_demand_per_hour == pytest.approx(0.95)
            assert await statements_for(one, "list_deployments") == 1
            await two.create_model(ModelCreate(name="added-on-two"))
            assert [m.name for m in await one.list_models()] == ["added-on-two"]
            await one.delete_model("added-on-two")
            assert await two.list_models() == []

    asyncio.run(main())


def test_redis_down_reads_the_database(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        away = redis_cache("hearth-test:catalog:away:", "redis://127.0.0.1:1/0", timeout=0.2)
        async with replica(database_url, away) as catalog:
            made = await catalog.create_model(ModelCreate(name="still-readable"))
            assert [m.name for m in await catalog.list_models()] == ["still-readable"]
            assert (await catalog.get_model(made.id)).name == "still-readable"
            assert await statements_for(catalog, "list_models") == 1  # nothing cached

    with caplog.at_level(logging.WARNING, logger="hearth.catalog.cache"):
        asyncio.run(main())
    assert any("Redis" in r.getMessage() for r in caplog.records), caplog.records


def test_a_frozen_redis_times_out_into_the_database(database_url: str) -> None:
    """A Redis that accepts connections and never answers: each command gives up after
    the timeout, and the read is the database's."""
    with socket.socket() as frozen:
        frozen.bind(("127.0.0.1", 0))
        frozen.listen(16)  # connections complete in the backlog; nothing ever replies
        port = frozen.getsockname()[1]

        async def main() -> None:
            cache = redis_cache("x:", f"redis://127.0.0.1:{port}/0", timeout=0.2)
            async with replica(database_url, cache) as catalog:
                await catalog.create_model(ModelCreate(name="served-anyway"))
                assert [m.name for m in await catalog.list_models()] == ["served-anyway"]

        asyncio.run(main())
