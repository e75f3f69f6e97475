"""The bare ASGI replies and streams written in the request's own task: what they send, and a
stream when the client leaves."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

import pytest
from starlette.background import BackgroundTask

from hearth.http.replies import EventStream, JsonReply, Streamed


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """The test, on an event loop of its own."""

    @functools.wraps(test)
    def wrapper() -> None:
        asyncio.run(test())

    return wrapper


SCOPE = {"type": "http", "method": "POST", "path": "/v1/chat/completions"}


class Client:
    """An ASGI server's side of one request: records what is sent; `leave()` makes
    `receive` report the disconnect, as uvicorn does when the connection closes."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.gone = asyncio.Event()

    async def receive(self) -> dict:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def leave(self) -> None:
        self.gone.set()


@run
async def test_json_reply_sends_its_length_and_headers() -> None:
    client = Client()
    await JsonReply(b'{"a":1}', [(b"x-one", b"1")])(SCOPE, client.receive, client.send)
    start, body = client.sent
    assert start["status"] == 200
    assert dict(start["headers"]) == {
        b"content-type": b"application/json",
        b"content-length": b"7",
        b"x-one": b"1",
    }
    assert body == {"type": "http.response.body", "body": b'{"a":1}'}


@run
async def test_stream_sends_each_piece_then_ends() -> None:
    async def pieces() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        yield b"data: 2\n\n"

    client = Client()
    await EventStream(pieces(), [])(SCOPE, client.receive, client.send)
    assert client.sent[0]["headers"][0] == (b"content-type", b"text/event-stream; charset=utf-8")
    assert [m.get("body") for m in client.sent[1:]] == [b"data: 1\n\n", b"data: 2\n\n", b""]
    assert [m.get("more_body") for m in client.sent[1:]] == [True, True, False]


@run
async def test_stream_is_cancelled_and_closed_when_the_client_leaves() -> None:
    closed = asyncio.Event()
    waiting = asyncio.Event()

    async def pieces() -> AsyncGenerator[bytes, None]:
        try:
            yield b"data: 1\n\n"
            waiting.set()
            await asyncio.sleep(30)  # an engine that takes its time
            yield b"data: never\n\n"
        finally:
            closed.set()

    client = Client()
    reply = asyncio.create_task(EventStream(pieces(), [])(SCOPE, client.receive, client.send))
    await waiting.wait()
    client.leave()
    await asyncio.wait_for(reply, 2)  # ends quietly: no CancelledError out of the reply
    assert closed.is_set()
    assert [m.get("body") for m in client.sent[1:]] == [b"data: 1\n\n"]


@run
async def test_a_cancellation_from_outside_is_not_swallowed() -> None:
    waiting = asyncio.Event()

    async def pieces() -> AsyncGenerator[bytes, None]:
        yield b"data: 1\n\n"
        waiting.set()
        await asyncio.sleep(30)
        yield b"data: never\n\n"

    client = Client()
    reply = asyncio.create_task(EventStream(pieces(), [])(SCOPE, client.receive, client.send))
    await waiting.wait()
    reply.cancel()  # server shutdown, say
    with pytest.raises(asyncio.CancelledError):
        await reply


@run
async def test_a_streaming_response_streams_in_the_task_and_runs_its_background() -> None:
    ran = []

    async def pieces() -> AsyncGenerator[str, None]:
        yield "é"  # text is encoded, as Starlette does
        yield "x"

    client = Client()
    reply = Streamed(pieces(), media_type="application/x-ndjson", background=None)
    reply.background = BackgroundTask(ran.append, "done")
    await reply(SCOPE, client.receive, client.send)
    assert (b"content-type", b"application/x-ndjson") in client.sent[0]["headers"]
    assert [m.get("body") for m in client.sent[1:]] == ["é".encode(), b"x", b""]
    assert ran == ["done"]
