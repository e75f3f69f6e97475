"""A small HTTP/1.1 client for the gateway's hot path: keep-alive pools, timeouts, streams.

`HttpEngine` sends every request to an engine through `WireClient`: one pool of idle
keep-alive connections per scheme, host and port, each connection an asyncio Protocol
around httptools' parser (_wire_connection.py). It does what the engines need and no
more: GET and POST (not HEAD) with a body in memory; replies delimited by Content-Length,
chunked encoding or the connection's end; no redirects, cookies, proxies or compression.

    client = WireClient(headers={...}, connect_timeout=5, read_timeout=300)
    # or WireClient(..., unix_socket="/run/x.sock"): every URL's connection goes there
    response = await client.request("POST", url, body, {"Content-Type": "..."})
    body = await response.read()          # or: async for data in response.chunks()
    response.release()                    # read() and chunks() release when they end
    await client.close()

Failures are raised as `WireError` subclasses, which `HttpEngine` maps to Hearth's
errors. Header values (credentials) never appear in them.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import AsyncIterator, Mapping
from functools import lru_cache
from urllib.parse import urlsplit

from hearth.engines._wire_connection import (
    PAUSE_ABOVE,
    Connection,
    ConnectTimeout,
    Disconnected,
    ProtocolError,
    ReadTimeout,
    Unreachable,
    WireError,
)

__all__ = [
    "MAX_BODY",
    "PAUSE_ABOVE",
    "ConnectTimeout",
    "Disconnected",
    "ProtocolError",
    "ReadTimeout",
    "Response",
    "Unreachable",
    "WireClient",
    "WireError",
]

MAX_BODY = 64 * 1024 * 1024  # a whole (not streamed) reply larger than this is refused
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Sent unless a request or the client's own headers say otherwise. No compression: bodies
# are not decoded here (and a compressed stream would hold tokens back). Some hosted APIs'
# front ends refuse requests without a User-Agent.
_DEFAULT_HEADERS = {"User-Agent": "hearth", "Accept-Encoding": "identity"}


class Prepared:
    """Request headers checked and encoded once, for requests that send them over and
    over (an engine adapter's constant headers): `request` takes them in place of a
    mapping."""

    __slots__ = ("lines", "names")

    def __init__(self, headers: Mapping[str, str]) -> None:
        self.names = frozenset(name.lower() for name in headers)
        self.lines = b"".join(_header_line(name, value) for name, value in headers.items())


class _Pool:
    """The connections to one scheme, host and port. Idle ones are reused last-in first-out
    (the warmest first, and the coldest left to expire); there is no cap on connections,
    since a stream holds one for a whole generation and the gateway's limiter already
    bounds concurrency."""

    def __init__(self, client: WireClient, scheme: str, host: str, port: int) -> None:
        self.loop = client.loop
        self.host, self.port = host, port
        self.ssl = (
            (client.ssl_context or ssl.create_default_context()) if scheme == "https" else None
        )
        self.unix_socket = client.unix_socket
        self.connect_timeout = client.connect_timeout
        self.read_timeout = client.read_timeout
        self.keepalive = client.keepalive
        self.max_body = client.max_body
        self.idle: list[Connection] = []
        self.conns: set[Connection] = set()  # idle and busy, for close()
        self._sweeper: asyncio.TimerHandle | None = None

    async def acquire(self, *, fresh: bool, deadline: float) -> tuple[Connection, bool]:
        """A connection, and whether it was reused from the pool."""
        now = self.loop.time()
        while self.idle and not fresh:
            conn = self.idle.pop()
            if now - conn.idle_since < self.keepalive:
                return conn, True
            conn.abort()  # the most recent has expired, so have all older ones
        timeout = min(self.connect_timeout, deadline - now)
        try:
            async with asyncio.timeout(timeout):
                if self.unix_socket is not None:
                    _, conn = await self.loop.create_unix_connection(
                        lambda: Connection(self), self.unix_socket
                    )
                else:
                    _, conn = await self.loop.create_connection(
                        lambda: Connection(self),
                        self.host,
                        self.port,
                        ssl=self.ssl,
                        server_hostname=self.host if self.ssl else None,
                    )
        except TimeoutError as exc:
            raise ConnectTimeout(f"no connection to {self._where} within {timeout:g} s") from exc
        except OSError as exc:  # refused, unreachable, DNS, TLS (ssl.SSLError is an OSError)
            raise Unreachable(f"cannot connect to {self._where}: {exc}") from exc
        self.conns.add(conn)
        return conn, False

    def release(self, conn: Connection) -> None:
        conn.idle_since = self.loop.time()
        self.idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_later(self.keepalive, self._sweep)

    def forget(self, conn: Connection) -> None:
        """`conn` is closed (by us or by the server)."""
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def close(self) -> list[asyncio.Future[None]]:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self.idle.clear()
        conns = list(self.conns)
        for conn in conns:
            conn.abort()
        return [conn.lost for conn in conns]

    @property
    def _where(self) -> str:
        if self.unix_socket is not None:
            return self.unix_socket
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _sweep(self) -> None:
        """Close connections idle too long, even when no request comes to notice."""
        self._sweeper = None
        expired = self.loop.time() - self.keepalive
        while self.idle and self.idle[0].idle_since <= expired:
            self.idle.pop(0).abort()
        if self.idle:
            self._sweeper = self.loop.call_at(self.idle[0].idle_since + self.keepalive, self._sweep)


class Response:
    """A reply whose head has arrived; read its body with `read()` or `chunks()`."""

    def __init__(self, conn: Connection, path: str) -> None:
        self._conn: Connection | None = conn
        self.status: int = conn.status
        self.reason = conn.reason.decode("latin-1")
        self.headers = conn.headers
        self.path = path  # the request's path, for error messages

    def header(self, name: str) -> str | None:
        wanted = name.lower().encode()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value.decode("latin-1")
        return None

    async def read(self) -> bytes:
        """The whole body (at most `MAX_BODY` bytes); releases the connection."""
        conn = self._open()
        try:
            if conn.stream:  # an error reply to a stream request: read it whole
                conn.stream = False
                conn.resume()
            while not conn.done:
                await conn.wait()
            return conn.take()
        finally:
            self.release()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives: all that has arrived, each time the network is waited
        for. Releases the connection at the end."""
        conn = self._open()
        try:
            while True:
                if conn.body:
                    yield conn.take()
                elif conn.done:
                    return
                else:
                    await conn.wait()
        finally:
            self.release()

    def release(self) -> None:
        """Done with the reply: a connection read to the end goes back to the pool, any
        other is closed. Idempotent."""
        if self._conn is not None:
            self._conn.finish()
            self._conn = None

    def _open(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the response was released")
        return self._conn


class WireClient:
    """Keep-alive HTTP/1.1 connections to any number of servers; `headers` go with every
    request. Create and use it inside one running event loop."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float,
        read_timeout: float,
        keepalive: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = MAX_BODY,
        unix_socket: str | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        # Every connection goes to this Unix socket, whatever the URL's host (which then
        # only fills the Host header): a child process of Hearth's that listens on no port.
        self.unix_socket = unix_socket
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive = keepalive
        self.ssl_context = ssl_context  # for https; None: the system's trusted CAs
        self.max_body = max_body
        given = {name.lower(): (name, value) for name, value in (headers or {}).items()}
        defaults = {name.lower(): (name, value) for name, value in _DEFAULT_HEADERS.items()}
        self._headers = [
            (key, _header_line(name, value)) for key, (name, value) in (defaults | given).items()
        ]
        self._pools: dict[tuple[str, str, int], _Pool] = {}

    async def request(
        self,
        method: str,
        url: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | Prepared | None = None,
        *,
        stream: bool = False,
        total: float | None = None,
    ) -> Response:
        """Send a request and wait for the reply's head. `headers` add to and override
        the client's. `stream`: the body will be read with `chunks()`, under flow control.
        `total`: a time limit for the whole exchange, connecting included.

        A connection reused from the pool that the server closed while it was idle fails
        before any byte of the reply; that request is sent again once, on a new
        connection. Never after a byte has arrived: the server may have acted on it.
        """
        key, host_line, path = _split(url)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = _Pool(self, *key)
        raw = self._encode(method, path, host_line, body, headers)
        deadline = math.inf if total is None else self.loop.time() + total
        for attempt in (0, 1):
            conn, reused = await pool.acquire(fresh=attempt > 0, deadline=deadline)
            conn.send(raw, stream=stream, deadline=deadline)
            try:
                while not conn.head_done:
                    await conn.wait()
            except Disconnected:
                conn.finish()
                if reused and not conn.got_bytes and attempt == 0:
                    continue
                raise
            except BaseException:
                conn.finish()
                raise
            return Response(conn, path.partition("?")[0])
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close every connection, idle or busy, and wait until they are closed."""
        lost = [future for pool in self._pools.values() for future in pool.close()]
        self._pools.clear()
        if lost:
            await asyncio.wait(lost, timeout=1.0)

    def _encode(
        self,
        method: str,
        path: str,
        host_line: bytes,
        body: bytes | None,
        headers: Mapping[str, str] | Prepared | None,
    ) -> bytes:
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), host_line]
        given: set[str] | frozenset[str] = set()
        if isinstance(headers, Prepared):
            given = headers.names
            lines.append(headers.lines)
        elif headers:
            for name, value in headers.items():
                given.add(name.lower())
                lines.append(_header_line(name, value))
        lines.extend(line for name, line in self._headers if name not in given)
        if body is not None:
            lines.append(b"Content-Length: %d\r\n" % len(body))
        lines.append(b"\r\n")
        if body:
            lines.append(body)
        return b"".join(lines)


def _header_line(name: str, value: str) -> bytes:
    # A line break in a value would let it add headers or a request of its own. The
    # message names the header, never the value (it may be a credential).
    line = f"{name}: {value}\r\n"
    if any(c in name + value for c in "\r\n\0") or not name or ":" in name or not line.isascii():
        raise ValueError(f"invalid HTTP header {name!r}")
    return line.encode()


@lru_cache(maxsize=256)
def _split(url: str) -> tuple[tuple[str, str, int], bytes, str]:
    """The pool key (scheme, host, port), the Host header line and the request target.
    Cached: an engine asks for the same few URLs over and over."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname  # lower case, without an IPv6 literal's brackets
    port = parts.port or _DEFAULT_PORTS[scheme]
    authority = f"[{host}]" if ":" in host else host
    if port != _DEFAULT_PORTS[scheme]:
        authority += f":{port}"
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if any(c in path for c in " \r\n\0"):
        raise ValueError(f"invalid characters in the URL's path: {url!r}")
    return (scheme, host, port), _header_line("Host", authority), path
