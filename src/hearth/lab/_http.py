"""A small HTTP/1.1 client on asyncio streams, for the load generator's hot path.

An HTTP library costs a few hundred microseconds of Python per request; at a thousand
requests a second that is the whole core, and the client, not the server, sets the pace. This
one writes a prepared request, reads the head, and hands the body over as it arrives
(chunked, by length, or to the close), on keep-alive connections over TCP or TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

# Servers close keep-alive connections idle for a while (uvicorn: 5 s); a request written on
# one just as it closes fails with no answer. Like httpx (keepalive_expiry 5 s), a
# connection idle longer than this is not reused.
IDLE_EXPIRY = 3.0


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    path: str  # the base path, without a trailing slash ("/v1")

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def authority(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return self.host if self.port == default else f"{self.host}:{self.port}"


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.perf_counter()


class Response:
    """A response whose head is read; `body()` yields the body's bytes as they arrive."""

    def __init__(self, client: Connections, conn: _Conn, status: int, head: bytes) -> None:
        self._client, self._conn = client, conn
        self.status = status
        self._head = head.lower()
        self._released = False  # back in the pool: no longer this response's to close

    def header(self, name: bytes) -> bytes | None:
        at = self._head.find(b"\r\n" + name.lower() + b":")
        if at < 0:
            return None
        start = at + len(name) + 3
        return self._head[start : self._head.index(b"\r\n", start)].strip()

    async def body(self) -> AsyncIterator[bytes]:
        reader = self._conn.reader
        if b"chunked" in (self.header(b"transfer-encoding") or b""):
            while True:
                size = int((await reader.readline()).split(b";")[0].strip(), 16)
                if size == 0:
                    await reader.readline()  # the blank line after the last chunk
                    break
                data = await reader.readexactly(size + 2)
                yield data[:-2]
            self._release()
        elif (length := self.header(b"content-length")) is not None:
            left = int(length)
            while left > 0:
                data = await reader.read(min(left, 65536))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
            self._release()
        else:  # to the close
            while data := await reader.read(65536):
                yield data
            self.close()

    def _release(self) -> None:
        if b"close" in (self.header(b"connection") or b""):
            self.close()
        else:
            self._released = True
            self._client.release(self._conn)

    def close(self) -> None:
        """Drop the connection (a response not read to its end cannot be reused)."""
        if not self._released:
            self._conn.writer.close()


class Connections:
    """Keep-alive connections to one origin, as many as are in use at once."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self._idle: list[_Conn] = []
        self._all: set[asyncio.StreamWriter] = set()  # every connection opened, to close
        self._tls = ssl.create_default_context() if origin.scheme == "https" else None

    async def _connect(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if time.perf_counter() - conn.idle_since < IDLE_EXPIRY and not conn.reader.at_eof():
                return conn
            conn.writer.close()
        reader, writer = await asyncio.open_connection(
            self.origin.host, self.origin.port, ssl=self._tls, limit=1 << 20
        )
        self._all.add(writer)
        return _Conn(reader, writer)

    def release(self, conn: _Conn) -> None:
        conn.idle_since = time.perf_counter()
        self._idle.append(conn)

    async def send(self, raw: bytes) -> Response:
        """Write a prepared request and read the response's head."""
        conn = await self._connect()
        try:
            conn.writer.write(raw)
            head = await conn.reader.readuntil(b"\r\n\r\n")
        except BaseException:
            conn.writer.close()
            raise
        return Response(self, conn, int(head.split(b" ", 2)[1]), head)

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """A keep-alive POST of a JSON body, as the bytes to write."""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (
            f"POST {self.origin.path}{path} HTTP/1.1\r\nhost: {self.origin.authority}\r\n"
            f"content-type: application/json\r\naccept: text/event-stream\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n"
        ).encode() + body

    async def close(self) -> None:
        """Close every connection, idle or cut off mid-answer, and wait until they are."""
        self._idle.clear()
        writers, self._all = self._all, set()
        for writer in writers:
            writer.close()
        for writer in writers:
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
