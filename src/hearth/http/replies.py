"""Replies as bare ASGI callables, for the hot routes, and streams written in the request's
own task, for every streaming route.

Starlette's `Response` builds its header list from a mapping on every request, and its
`StreamingResponse` runs the stream in a second task beside an anyio task group listening
for the client to leave (under uvicorn, whose HTTP scope announces ASGI spec 2.0), so each
stream's first piece waited one more turn of the event loop, and the task group cost more
CPU than the rest of a streamed /v1 request. `stream_in_task` writes the pieces from the
request's own task; a watcher task cancels it if the client leaves.

- `JsonReply`, `EventStream`: the /v1 chat route's replies, headers prepared by the caller.
- `Streamed`: a `StreamingResponse` (built as usual, so FastAPI returns it as it is) that
  streams with `stream_in_task`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator

from fastapi.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]

JSON = (b"content-type", b"application/json")
EVENT_STREAM = (b"content-type", b"text/event-stream; charset=utf-8")


class JsonReply:
    """A complete JSON body; `content-length` is added here."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, headers: Headers, status: int = 200) -> None:
        self.body, self.status = body, status
        self.headers = [JSON, (b"content-length", b"%d" % len(body)), *headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class EventStream:
    """Server-sent events, each piece written as it comes (`stream_in_task`)."""

    __slots__ = ("headers", "pieces")

    def __init__(self, pieces: AsyncIterator[bytes], headers: Headers) -> None:
        self.pieces = pieces
        self.headers = [EVENT_STREAM, *headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": self.headers}
        await stream_in_task(self.pieces, start, receive, send)


class Streamed(StreamingResponse):
    """Starlette's `StreamingResponse`, written with `stream_in_task`."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        start = {
            "type": "http.response.start",
            "status": self.status_code,
            "headers": self.raw_headers,
        }
        await stream_in_task(self.body_iterator, start, receive, send, charset=self.charset)
        if self.background is not None:
            await self.background()


async def stream_in_task(
    pieces: AsyncIterable[bytes | str | memoryview],
    start: Message,
    receive: Receive,
    send: Send,
    *,
    charset: str = "utf-8",
) -> None:
    """Send `start`, then each piece as it comes, from the calling task. If the client
    leaves, the stream is cancelled where it waits (for an engine, usually) and closed,
    which is what frees the engine's slot; the request then ends quietly, as Starlette's
    does. A cancellation from outside (shutdown) still propagates."""
    task = asyncio.current_task()
    assert task is not None
    streaming = [True]
    watcher: asyncio.Task[bool] | None = None
    try:
        await send(start)
        async for piece in pieces:
            if isinstance(piece, str):
                piece = piece.encode(charset)
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            if watcher is None:
                # Once the first piece is out: until the stream waits, there is nothing to
                # cancel, and uvicorn reports a disconnect whenever it is asked.
                watcher = asyncio.create_task(_cancel_when_gone(receive, task, streaming))
        streaming[0] = False
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if not _fired(watcher):
            raise  # cancelled from outside: not ours to swallow
    finally:
        streaming[0] = False
        if watcher is not None:
            watcher.cancel()
        if _fired(watcher):
            task.uncancel()  # the client left: the cancellation was ours, and is spent
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            await aclose()


def _fired(watcher: asyncio.Task[bool] | None) -> bool:
    return bool(watcher and watcher.done() and not watcher.cancelled() and watcher.result())


async def _cancel_when_gone(receive: Receive, task: asyncio.Task, streaming: list[bool]) -> bool:
    """Wait for the client to leave; then, if the stream is still going, cancel it. True
    if it did. (The request's body has been read: what comes now is the disconnect.)"""
    with contextlib.suppress(asyncio.CancelledError):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
    if streaming[0]:
        task.cancel()
        return True
    return False
