"""uvicorn's HTTP/1.1 protocol (httptools), writing a response's head and the start of its
body in one send.

uvicorn writes the status line and headers as soon as the app sends `http.response.start`,
and the body as a second write; under uvloop each write is a send(2) at once. So every
response left as two TCP segments: one more system call here (on loopback, the kernel
delivers to the reader inside it), and one more wake-up and read for the client, before it
has anything it can use. Here the head is held until the body's first bytes, which
normally follow in the same step of the request's task, and goes out with them; if they do
not come by the event loop's next turn (a stream waiting for its first token), the head
goes out alone then, so a client never waits on it.

It also stamps each request with the time its first bytes were parsed (`stamps.RECEIVED`),
the start of what the gateway reports as its added time: the app is called only after
uvicorn has parsed the request and its task has had its turn on the event loop.

Measured at 50 requests/s through the gateway (bench/RESULTS.md, session 7).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from hearth.http.stamps import RECEIVED

_HEAD = b"HTTP/1.1 "  # how every status line uvicorn writes begins
_JOIN_UP_TO = 16384  # bytes of body copied to join the head; larger ones go in a writev


class HeadHoldingTransport:
    """A transport that holds a response head (a write that starts with a status line and
    ends the headers) until the next write or the loop's next turn, whichever is first.
    Writes keep their order; closing writes what is held first. Everything else is the
    wrapped transport's."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) > _JOIN_UP_TO:
                self._transport.writelines((held, data))  # one writev, no copy
            else:
                self._transport.write(held + data)
        elif (
            isinstance(data, bytes)  # uvicorn writes bytes
            and data.startswith(_HEAD)
            and data[9:10] != b"1"  # not an interim reply (100 Continue): that goes at once
            and data.endswith(b"\r\n\r\n")
        ):
            self._held = data
            self._loop.call_soon(self.flush)
        else:
            self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.write(b"".join(lines))

    def flush(self) -> None:
        """Write what is held, if anything."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held = None
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, its responses written through `HeadHoldingTransport`,
    each request stamped with when its first bytes were parsed. Flow control and the
    connection's addresses use the socket's own transport."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = HeadHoldingTransport(transport, self.loop)  # type: ignore[assignment]

    def on_message_begin(self) -> None:
        # httptools calls this as it meets a request's first byte, inside the event loop's
        # `data_received` for the read that brought it; uvicorn makes the scope here.
        super().on_message_begin()
        self.scope["state"][RECEIVED] = time.perf_counter()

    def eof_received(self) -> None:
        # The client has stopped sending; the event loop closes the socket on return, so
        # what is held goes out now (a client that half-closes may still read).
        self.transport.flush()  # type: ignore[attr-defined]
