"""The limiter's lean Redis client (`gateway/_resp.py`) against the real Redis: replies of
every kind, pipelining, scripts the server does not have yet, and a lost connection."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from hearth.gateway._resp import RespClient, Script, _Incomplete, pack, parse
from tests.gateway.test_limits import REDIS_URL


def test_parse_reads_every_reply_kind_and_waits_for_the_rest() -> None:
    wire = b"*4\r\n:1\r\n$3\r\nabc\r\n*2\r\n+OK\r\n$-1\r\n-ERR nope\r\n"
    reply, end = parse(wire)
    assert reply[:3] == [1, b"abc", [b"OK", None]] and end == len(wire)
    assert isinstance(reply[3], ResponseError) and str(reply[3]) == "ERR nope"
    for cut in range(len(wire)):
        with pytest.raises(_Incomplete):
            parse(wire[:cut])
    assert pack(b"GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


def test_pipelined_calls_get_their_own_replies_and_scripts_load_themselves() -> None:
    script = Script(f"-- {uuid.uuid4().hex}\nreturn {{ARGV[1], #KEYS}}")  # new to the server

    async def main() -> None:
        redis = Redis.from_url(REDIS_URL)
        client = RespClient.from_redis(redis)
        await redis.aclose()
        assert client is not None and (client.host, client.port) == ("127.0.0.1", 6379)
        try:
            replies = await asyncio.gather(
                *(client.evalsha(script, [b"a", b"b"], [b"%d" % i]) for i in range(200))
            )
            assert replies == [[b"%d" % i, 2] for i in range(200)]
            assert await client.call(b"SCRIPT", b"EXISTS", script.sha) == [1]
            with pytest.raises(ResponseError):
                await client.evalsha(Script("return redis.call('NOPE')"), [], [])
        finally:
            await client.close()

    asyncio.run(main())


def test_a_lost_connection_fails_what_waits_and_the_next_call_reconnects() -> None:
    async def main() -> None:
        client = RespClient("127.0.0.1", 6379)
        killer = Redis.from_url(REDIS_URL)
        try:
            ident = await client.call(b"CLIENT", b"ID")
            waiting = asyncio.ensure_future(client.call(b"BLPOP", uuid.uuid4().hex.encode(), b"5"))
            await asyncio.sleep(0.1)
            await killer.execute_command("CLIENT", "KILL", "ID", str(ident))
            with pytest.raises(RedisConnectionError):
                await waiting
            assert await client.call(b"PING") == b"PONG"
            assert await client.call(b"CLIENT", b"ID") != ident
        finally:
            await client.close()
            await killer.aclose()

    asyncio.run(main())


def test_unreachable_redis_is_a_connection_error() -> None:
    async def main() -> None:
        client = RespClient("127.0.0.1", 1)
        with pytest.raises(RedisConnectionError):
            await client.call(b"PING")
        await client.close()

    asyncio.run(main())
