"""A PostgreSQL wire-protocol proxy that counts round trips, for the web benchmark.

It listens on a TCP port on 127.0.0.1 and relays every connection to a PostgreSQL server
(a Unix socket or host:port), reading the client's side of the protocol as it passes:
each simple `Query` ('Q') and each `Sync` ('S') makes the client wait for the server's
`ReadyForQuery`, and asyncpg also waits after the `Flush` ('H') that ends a statement's
preparation, so Q + S + H is the number of round trips, whatever the driver (asyncpg uses
the extended protocol, psycopg2 the simple one; BEGIN/COMMIT and statement preparation
count too). Executed statements are `Query` + `Execute` ('E').

Counts are served as JSON on a second port (any request):
    {"roundtrips": N, "query": N, "sync": N, "flush": N, "parse": N, "execute": N, ...}
and with --trace the messages themselves (GET /trace: Q, P with their SQL; S; H).

Run: python bench/_webapp_pgcount.py --listen 6000 --control 6001 --unix /tmp/.s.PGSQL.5432
     (prints "ready" when listening)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct

COUNTS = {
    "roundtrips": 0,
    "query": 0,
    "sync": 0,
    "flush": 0,
    "parse": 0,
    "execute": 0,
    "connections": 0,
}
_NAMES = {b"Q": "query", b"S": "sync", b"H": "flush", b"P": "parse", b"E": "execute"}
_WAITS = (b"Q", b"S", b"H")  # the client then waits for the server's answer
_STARTUP_CODES_REPLIED = {80877103, 80877104}  # SSLRequest, GSSENCRequest: server answers N


TRACE: list[str] | None = None  # with --trace: the messages, served on the control port


def _text(message: bytes) -> str:
    """A readable head of a Query/Parse message (statement name and SQL)."""
    return message.replace(b"\0", b" ").decode("utf-8", "replace")[:160].strip()


class ClientParser:
    """Follows the frontend message stream, counting message types."""

    def __init__(self) -> None:
        self.buffer = b""
        self.startup = True

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.startup:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                if code not in _STARTUP_CODES_REPLIED:
                    self.startup = False  # StartupMessage (or CancelRequest: connection ends)
                continue
            if len(self.buffer) < 5:
                return
            kind = self.buffer[:1]
            (length,) = struct.unpack("!i", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            message, self.buffer = self.buffer[5 : 1 + length], self.buffer[1 + length :]
            if TRACE is not None and kind in (b"Q", b"P", b"S", b"H"):
                TRACE.append(kind.decode() + " " + _text(message))
            name = _NAMES.get(kind)
            if name is not None:
                COUNTS[name] += 1
                if kind in _WAITS:
                    COUNTS["roundtrips"] += 1


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, parser: ClientParser | None
) -> None:
    try:
        while data := await reader.read(65536):
            if parser is not None:
                parser.feed(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


def make_handler(unix: str | None, host: str, port: int):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        COUNTS["connections"] += 1
        if unix:
            up_reader, up_writer = await asyncio.open_unix_connection(unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(
            _pipe(reader, up_writer, ClientParser()), _pipe(up_reader, writer, None)
        )

    return handle


async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request = await reader.read(4096)
    if request.startswith(b"GET /trace") and TRACE is not None:
        body = json.dumps(TRACE).encode()
        TRACE.clear()
    else:
        body = json.dumps(COUNTS).encode()
    writer.write(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    await writer.drain()
    writer.close()


async def main(args: argparse.Namespace) -> None:
    server = await asyncio.start_server(
        make_handler(args.unix, args.host, args.port), "127.0.0.1", args.listen
    )
    ctl = await asyncio.start_server(control, "127.0.0.1", args.control)
    print("ready", flush=True)
    async with server, ctl:
        await asyncio.gather(server.serve_forever(), ctl.serve_forever())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--control", type=int, required=True)
    parser.add_argument("--unix", help="PostgreSQL's Unix socket file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--trace", action="store_true", help="keep the messages (GET /trace)")
    arguments = parser.parse_args()
    if arguments.trace:
        TRACE = []
    asyncio.run(main(arguments))
