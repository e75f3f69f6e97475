"""The HTTP protocol `hearth serve` runs: a response's head goes out with the first bytes of
its body, in one write, and alone at the loop's next turn when the body is not ready; each
request stamped with when its first byte was read."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
import uvloop

from hearth.http.protocol import HeadHoldingTransport, HttpProtocol
from hearth.http.stamps import RECEIVED
from hearth.observability.metrics import Metrics
from hearth.observability.middleware import RequestMiddleware
from tests._server import free_port

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n"


class Recorder:
    """The socket's transport: what was written, in which calls."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, lines: tuple[bytes, ...]) -> None:
        self.writes.append(b"+".join(lines))  # "+": one call, several buffers

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def _holding() -> tuple[HeadHoldingTransport, Recorder]:
    recorder = Recorder()
    return HeadHoldingTransport(recorder, asyncio.get_running_loop()), recorder  # type: ignore[arg-type]


def test_a_head_goes_out_with_the_body_that_follows_it() -> None:
    async def main() -> None:
        transport, recorder = _holding()
        transport.write(HEAD)
        assert recorder.writes == []
        transport.write(b"5\r\nhello\r\n")
        transport.write(b"0\r\n\r\n")
        await asyncio.sleep(0)  # the fallback flush finds nothing held
        assert recorder.writes == [HEAD + b"5\r\nhello\r\n", b"0\r\n\r\n"]

    asyncio.run(main())


def test_a_head_alone_goes_out_at_the_next_turn() -> None:
    async def main() -> None:
        transport, recorder = _holding()
        transport.write(HEAD)
        await asyncio.sleep(0)
        assert recorder.writes == [HEAD]
        transport.write(b"later")
        assert recorder.writes == [HEAD, b"later"]

    asyncio.run(main())


def test_interim_replies_are_not_held_and_large_bodies_are_not_copied() -> None:
    async def main() -> None:
        transport, recorder = _holding()
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert recorder.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        transport.write(HEAD)
        big = b"x" * 100_000
        transport.write(big)
        assert recorder.writes[1] == HEAD + b"+" + big

    asyncio.run(main())


def test_closing_writes_what_is_held_first_and_the_rest_is_the_transports() -> None:
    async def main() -> None:
        transport, recorder = _holding()
        transport.write(b"not a head")  # passes straight through
        transport.write(HEAD)
        transport.close()
        assert recorder.writes == [b"not a head", HEAD] and recorder.closed
        assert transport.get_extra_info("peername") == "info:peername"
        # Aborting drops what is held, as the socket's own buffer would be dropped.
        transport, recorder = _holding()
        transport.write(HEAD)
        transport.abort()
        await asyncio.sleep(0)
        assert recorder.writes == [] and recorder.closed

    asyncio.run(main())


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-at", b"1")]})
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)  # a stream waiting for its first token
    await send({"type": "http.response.body", "body": b"first", "more_body": True})
    await send({"type": "http.response.body", "body": b" last"})


@contextlib.asynccontextmanager
async def _serving(app: Any) -> AsyncIterator[int]:
    """`app` under uvicorn with Hearth's protocol, on a free port (yielded), in this loop."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=HttpProtocol, log_config=None, lifespan="off"
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_through_uvicorn_heads_are_never_held_back_and_bodies_arrive_whole(loop: str) -> None:
    async def main() -> None:
        async with _serving(_app) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for path in ("/fast", "/slow", "/fast"):  # keep-alive: one connection for all
                writer.write(f"GET {path} HTTP/1.1\r\nhost: x\r\n\r\n".encode())
                sent = time.perf_counter()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.5)
                waited = time.perf_counter() - sent
                assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"x-at: 1" in head
                assert b"transfer-encoding: chunked" in head
                assert waited < 0.5  # the slow stream's head did not wait for its body
                body = await asyncio.wait_for(reader.readuntil(b"0\r\n\r\n"), 5)
                assert body == b"5\r\nfirst\r\n5\r\n last\r\n0\r\n\r\n"
            writer.close()

    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def test_the_protocol_stamps_the_requests_first_byte_before_the_app_sees_it() -> None:
    seen: dict[str, float] = {}

    async def app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        seen["called"] = time.perf_counter()
        seen["received"] = scope["state"][RECEIVED]
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    # RequestMiddleware keeps the protocol's stamp (it only stands in for a missing one).
    wrapped = RequestMiddleware(app, metrics=Metrics(), max_body=1024, max_upload=1024)

    async def main() -> None:
        async with _serving(wrapped) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # The request line now, the rest later: the app is called once the headers
            # are complete, but the request began with its first byte.
            writer.write(b"POST /x HTTP/1.1\r\n")
            await writer.drain()
            await asyncio.sleep(0.2)
            rest_sent = time.perf_counter()
            writer.write(b"host: x\r\ncontent-length: 2\r\n\r\nhi")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200")
            writer.close()
        assert seen["received"] < rest_sent <= seen["called"]

    asyncio.run(main())
