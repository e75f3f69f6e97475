"""The cheapest process hop Python can make: a TCP relay that passes bytes both ways between
each client connection and its own upstream connection, parsing nothing (uvloop, asyncio
protocols, no copies beyond the kernel's).

It is a yardstick, not a gateway: whatever latency it adds over calling the upstream
directly is the price of one more process in the path on this machine (a wake-up per
direction, two more loopback writes), which no HTTP gateway written in Python can go under.

    python bench/_tcp_relay.py LISTEN_PORT UPSTREAM_PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection; `peer` is the transport of the other side."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: asyncio.Transport | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self.pending.append(data)  # the upstream connection is still opening
        else:
            self.peer.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            self.peer.close()


def main() -> None:
    listen, upstream = int(sys.argv[1]), int(sys.argv[2])

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        opening: set[asyncio.Task[None]] = set()  # strong references until each is done

        class Client(_Pipe):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                task = loop.create_task(self.open_upstream())
                opening.add(task)
                task.add_done_callback(opening.discard)

            async def open_upstream(self) -> None:
                up_transport, up = await loop.create_connection(_Pipe, "127.0.0.1", upstream)
                up.peer = self.transport
                self.peer = up_transport
                for data in self.pending:
                    up_transport.write(data)
                self.pending.clear()

        server = await loop.create_server(Client, "127.0.0.1", listen)
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
