"""A minimal Redis client for the limiter's two scripts, the only Redis calls on the request
path: one connection, commands pipelined, replies matched in order.

redis-py costs about 0.1 ms of CPU per command here (a pool checkout and release with an
asyncio lock, retry and observability wrappers, a stream reader), several times what the
Lua script itself costs Redis, on every request that carries a key. This client writes the
command on the shared connection at once and waits for its reply; concurrent requests
pipeline on that connection instead of checking connections in and out of a pool.

It speaks RESP2 and knows only what `RedisLimiter` needs: EVALSHA, falling back to EVAL
when the server lacks the script, plus AUTH and SELECT when connecting. Plain TCP only:
TLS or a Unix socket stay with redis-py (see `RespClient.from_redis`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeout

_CRLF = b"\r\n"


class _Incomplete(Exception):
    """The buffer ends before the reply does."""


def pack(*args: bytes) -> bytes:
    """One command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join([b"$%d\r\n%b\r\n" % (len(a), a) for a in args])


def parse(buffer: bytes | bytearray, start: int = 0) -> tuple[Any, int]:
    """The reply at `start` and where the next one begins; `_Incomplete` if it is cut off.
    An error reply is returned as a `ResponseError`, not raised."""
    end = buffer.find(_CRLF, start)
    if end < 0:
        raise _Incomplete
    kind, line = buffer[start : start + 1], buffer[start + 1 : end]
    after = end + 2
    if kind == b":":
        return int(line), after
    if kind == b"$":
        length = int(line)
        if length < 0:
            return None, after
        if len(buffer) < after + length + 2:
            raise _Incomplete
        return bytes(buffer[after : after + length]), after + length + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items = []
        for _ in range(count):
            item, after = parse(buffer, after)
            items.append(item)
        return items, after
    if kind == b"+":
        return bytes(line), after
    if kind == b"-":
        return ResponseError(bytes(line).decode(errors="replace")), after
    raise RedisConnectionError(f"unexpected reply from Redis: {bytes(buffer[start:end])!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[asyncio.Future[Any]] = deque()
        self.buffer = bytearray()
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        position = 0
        while self.waiting:
            try:
                reply, position = parse(buffer, position)
            except _Incomplete:
                break
            except Exception as exc:  # a reply we cannot read: the stream is lost
                self._fail(RedisConnectionError(str(exc)))
                if self.transport is not None:
                    self.transport.close()
                return
            future = self.waiting.popleft()
            if not future.done():  # its caller may have been cancelled meanwhile
                future.set_result(reply)
        del buffer[:position]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"connection to Redis lost: {exc or 'closed'}"))

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        self.transport = None
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(exc)

    def send(self, command: bytes) -> asyncio.Future[Any]:
        if self.transport is None:
            raise self.lost or RedisConnectionError("not connected to Redis")
        future = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.transport.write(command)
        return future


class RespClient:
    """One pipelined connection to one Redis server, made on first use and again after it
    is lost (the command that found it lost fails; the next one reconnects)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout: float | None = None,
        timeout: float | None = None,
    ) -> None:
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self._protocol: _Protocol | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def from_redis(cls, redis: Redis) -> RespClient | None:
        """A client for the server `redis` talks to, or None unless that is plain TCP."""
        pool = redis.connection_pool
        if pool.connection_class is not Connection:  # TLS, a Unix socket, a subclass
            return None
        options = pool.connection_kwargs
        if options.get("credential_provider") is not None:
            return None
        return cls(
            options.get("host", "localhost"),
            int(options.get("port", 6379)),
            db=int(options.get("db", 0) or 0),
            username=options.get("username"),
            password=options.get("password"),
            connect_timeout=options.get("socket_connect_timeout"),
            timeout=options.get("socket_timeout"),
        )

    async def evalsha(self, script: Script, keys: list[bytes], args: list[bytes]) -> Any:
        """Run a script by its SHA-1; sent in full when the server does not have it yet."""
        tail = [b"%d" % len(keys), *keys, *args]
        reply = await self.call(b"EVALSHA", script.sha, *tail)
        if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT"):
            reply = await self.call(b"EVAL", script.source, *tail)
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def call(self, *args: bytes) -> Any:
        """Send one command; its reply (an error reply is returned, not raised). Past
        `timeout` the connection is dropped (a frozen server: the replies of the commands
        pipelined behind this one would come too late to be told apart) and every command
        waiting on it fails; the next one connects again."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None or self._loop is not _loop():
            protocol = await self._connect()
        reply = protocol.send(pack(*args))
        try:
            async with asyncio.timeout(self.timeout):
                return await reply
        except TimeoutError:
            if protocol.transport is not None:
                protocol.transport.close()
            raise RedisTimeout(f"Redis did not answer within {self.timeout} s") from None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._connecting is None or self._loop is not loop:
            self._connecting, self._loop, self._protocol = asyncio.Lock(), loop, None
        async with self._connecting:
            protocol = self._protocol
            if protocol is not None and protocol.transport is not None:
                return protocol  # another request connected while this one waited
            try:
                async with asyncio.timeout(self.connect_timeout):
                    _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
            except (OSError, TimeoutError) as exc:
                raise RedisConnectionError(
                    f"cannot connect to Redis at {self.host}:{self.port}: {exc}"
                ) from exc
            setup = []
            if self.password is not None:
                credentials = [self.username.encode()] if self.username else []
                setup.append(protocol.send(pack(b"AUTH", *credentials, self.password.encode())))
            if self.db:
                setup.append(protocol.send(pack(b"SELECT", b"%d" % self.db)))
            for reply in await asyncio.gather(*setup):
                if isinstance(reply, ResponseError):
                    if protocol.transport is not None:
                        protocol.transport.close()
                    raise reply
            self._protocol = protocol
            return protocol

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and protocol.transport is not None:
            protocol.transport.close()


class Script:
    """A Lua script as EVALSHA needs it: its source and SHA-1, as bytes."""

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest().encode()


def _loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
