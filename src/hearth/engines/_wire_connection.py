"""One HTTP/1.1 connection of `WireClient` (_wire.py), and the errors the client raises.

A `Connection` is an asyncio Protocol that feeds what it receives to an
`httptools.HttpResponseParser` (the parser uvicorn uses) and keeps the reply's state for
the one exchange under way: head, body data not yet taken, end, error. Its read timeout
is one timer per exchange; its flow control pauses the socket under a slow stream reader.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, cast

import httptools

if TYPE_CHECKING:
    from hearth.engines._wire import _Pool

MAX_HEAD = 64 * 1024  # status line and headers
# A stream whose reader is slower than the engine stops reading the socket when this much
# is waiting, and resumes when the reader has taken it: memory stays bounded, and TCP
# slows the engine down rather than Hearth buffering its whole output.
PAUSE_ABOVE = 1024 * 1024


class WireError(Exception):
    """An HTTP exchange that failed; the subclass says where."""


class ConnectTimeout(WireError):
    """No connection within the connect timeout."""


class ReadTimeout(WireError):
    """The server went quiet for longer than the read timeout, or a reply with a total
    time limit took longer than that."""


class Unreachable(WireError):
    """The connection could not be made (refused, no route, DNS, TLS)."""


class ProtocolError(WireError):
    """The server broke HTTP: malformed or oversized reply, or hung up before its end."""


class Disconnected(ProtocolError):
    """The server closed the connection before the reply was complete."""


class Connection(asyncio.Protocol):
    """One connection, one exchange at a time. The parser's callbacks gather the reply;
    the reader waits on `_waiter`, which the head, body data, the end or an error wake."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self.alive = True  # until either side closes it
        self.lost = self._loop.create_future()  # set by connection_lost; awaited by close()
        self.idle_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._reset(stream=False, deadline=math.inf)
        self.done = True  # no exchange under way

    def _reset(self, *, stream: bool, deadline: float) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.buffered = 0
        self.head_size = 0
        self.head_done = False
        self.done = False
        self.keep_alive = False
        self.until_eof = False  # the body ends when the connection does
        self.error: WireError | None = None
        self.got_bytes = False
        self.last_read = 0.0
        self.stream = stream
        self.paused = False
        self._framed = False  # Content-Length or chunked seen
        self._deadline = deadline

    def send(self, request: bytes, *, stream: bool, deadline: float) -> None:
        """Start an exchange: reset what the last one left, write `request`, and arm the
        read timer."""
        self._reset(stream=stream, deadline=deadline)
        # One timer per exchange, pushed back lazily: data_received only notes the time,
        # and the timer, when it fires, re-arms itself if data came meanwhile.
        self.last_read = now = self._loop.time()
        self._timer = self._loop.call_at(
            min(now + self.pool.read_timeout, deadline), self._on_timer
        )
        assert self.transport is not None
        self.transport.write(request)

    async def wait(self) -> None:
        """Until something new arrives: the head, body data, the end, or an error."""
        if self.error is not None:
            raise self.error
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """All the body that has arrived, removed from the buffer."""
        data = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.buffered = 0
        self.resume()
        return data

    def resume(self) -> None:
        """Read the socket again after flow control paused it."""
        if self.paused and self.transport is not None:
            self.paused = False
            self.last_read = self._loop.time()  # the wait was ours, not the server's
            self.transport.resume_reading()

    def finish(self) -> None:
        """The exchange is over: back to the pool if the reply was read to its end and the
        server keeps the connection open, else closed (an engine stops generating when
        its client hangs up)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reusable = self.done and self.error is None and self.keep_alive
        self.done = True  # so that late data is an error, not a reply
        if reusable and self.alive:
            self.resume()  # paused as the last bytes came: the reply is whole all the same
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        self.alive = False
        if self.transport is not None:
            self.transport.abort()

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport; not an asyncio.Transport subclass under uvloop, hence a cast.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        self.last_read = self._loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP reply: {exc}"))
            return
        if self.stream and self.buffered > PAUSE_ABOVE and not self.paused and self.alive:
            self.paused = True
            assert self.transport is not None
            self.transport.pause_reading()
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        self.pool.forget(self)
        if not self.lost.done():
            self.lost.set_result(None)
        if self.done:
            return
        if self.until_eof and self.head_done and exc is None:
            # No Content-Length and not chunked: a clean close is how this body ends.
            self.on_message_complete()
            self._wake()
            return
        where = "before replying" if not self.got_bytes else "in the middle of its reply"
        self._fail(Disconnected(f"the server closed the connection {where}"))

    # --- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.done:  # bytes nobody asked for: the connection is no longer trustworthy
            self._fail(ProtocolError("the server sent data outside an exchange"))

    def on_status(self, status: bytes) -> None:
        self.reason += status
        self._count_head(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))
        self._count_head(len(name) + len(value) + 4)
        # Which framing the body has (llhttp knows, but httptools does not tell).
        if len(name) == 14 and name.lower() == b"content-length":
            self._framed = True
        elif len(name) == 17 and name.lower() == b"transfer-encoding":
            self._framed = b"chunked" in value.lower()

    def on_headers_complete(self) -> None:
        if self.error is not None:
            return
        self.status = self._parser.get_status_code()
        if 100 <= self.status < 200:
            return  # informational: the real head follows (on_message_complete resets)
        # Asked here: llhttp forgets it once the message is complete.
        self.keep_alive = self._parser.should_keep_alive()
        self.until_eof = not self._framed and self.status not in (204, 304)
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if self.error is not None:
            return
        self.body.append(body)
        self.buffered += len(body)
        if not self.stream and self.buffered > self.pool.max_body:
            self._fail(ProtocolError(f"reply larger than {self.pool.max_body} bytes"))

    def on_message_complete(self) -> None:
        if self.error is not None:
            return
        if not self.head_done:  # the end of a 1xx: forget it, wait for the real reply
            self.reason, self.headers, self.head_size, self._framed = b"", [], 0, False
            return
        self.done = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- internals -------------------------------------------------------------------------

    def _count_head(self, size: int) -> None:
        self.head_size += size
        if self.head_size > MAX_HEAD and self.error is None:
            self._fail(ProtocolError(f"reply head larger than {MAX_HEAD} bytes"))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: WireError) -> None:
        """End the exchange with `exc` (the first error wins) and drop the connection."""
        if self.error is None:
            self.error = exc
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
        self.abort()

    def _on_timer(self) -> None:
        self._timer = None
        if self.done or self.error is not None:
            return
        now = self._loop.time()
        if self.paused:
            self.last_read = now  # the reader is slow, not the server
        due = min(self.last_read + self.pool.read_timeout, self._deadline)
        if now < due:
            self._timer = self._loop.call_at(due, self._on_timer)
        elif due == self._deadline:
            self._fail(ReadTimeout("no complete reply within the time limit"))
        else:
            self._fail(ReadTimeout(f"no data for {self.pool.read_timeout:g} s"))
