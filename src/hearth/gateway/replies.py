"""The gateway's replies as bare ASGI callables, for its hottest route.

Starlette's `Response` builds its header list from a mapping on every request, and its
`StreamingResponse` runs the stream in a second task beside a task group listening for
the client to leave (under uvicorn, whose HTTP scope announces ASGI spec 2.0), so the first
chunk waited for one more turn of the event loop. These do the same with headers the
caller has prepared, and the stream in the request's own task: a watcher task cancels it
if the client leaves. Both work wherever a Starlette response does (they are ASGI apps).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

from starlette.types import Receive, Scope, Send

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
    """Server-sent events, each piece written as it comes. If the client leaves, the
    stream is cancelled where it waits (for the engine, usually) and closed, which is
    what frees the engine's slot; the request then ends quietly, as Starlette's does."""

    __slots__ = ("headers", "pieces")

    def __init__(self, pieces: AsyncGenerator[bytes, None], headers: Headers) -> None:
        self.pieces = pieces
        self.headers = [EVENT_STREAM, *headers]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        streaming = [True]
        watcher: asyncio.Task[bool] | None = None
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.headers})
            async for piece in self.pieces:
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                if watcher is None:
                    # Once the first piece is out: until the stream waits, there is nothing
                    # to cancel, and uvicorn reports a disconnect whenever it is asked.
                    watcher = asyncio.create_task(_cancel_when_gone(receive, task, streaming))
            streaming[0] = False
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not (watcher and watcher.done() and not watcher.cancelled() and watcher.result()):
                raise  # cancelled from outside (shutdown): not ours to swallow
            task.uncancel()
        finally:
            streaming[0] = False
            if watcher is not None:
                watcher.cancel()
            await self.pieces.aclose()


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
