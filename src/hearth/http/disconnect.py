"""A request whose client has gone stops: its work is cancelled where it waits (for an
engine, usually), as a stream's already was. Without this, a non-streaming completion
whose client timed out kept a local model generating for nobody, blocking every request
queued behind it.

Only requests still running after `after` seconds are watched, so the many short ones
cost a timer and nothing else. Watching means reading the connection for the client's
disconnect once the body is read; from then on the app's own `receive()` calls (a stream
listening for the same thing) are answered from what the watcher saw.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_DISCONNECT: Message = {"type": "http.disconnect"}


class CancelOnDisconnect:
    def __init__(self, app: ASGIApp, *, after: float = 0.25) -> None:
        self.app = app
        self.after = after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        watch = _Watch(receive, send, asyncio.current_task())  # type: ignore[arg-type]
        timer = asyncio.get_running_loop().call_later(self.after, watch.want)
        try:
            await self.app(scope, watch.receive, watch.send)
        except asyncio.CancelledError:
            if not watch.client_gone:
                raise
            # Cancelled by the watcher: nobody is left to answer. The task goes on, and the
            # access log says 499 (RequestMiddleware reads this).
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            scope.setdefault("state", {})["hearth_client_gone"] = True
        finally:
            timer.cancel()
            await watch.stop()


class _Watch:
    def __init__(self, receive: Receive, send: Send, task: asyncio.Task[None]) -> None:
        self._receive, self._send, self._task = receive, send, task
        self._body_read = False
        self._wanted = False
        self._watcher: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()
        self.client_gone = False
        self._response_done = False

    def want(self) -> None:
        """Start watching (now, or once the body has been read)."""
        self._wanted = True
        if self._body_read:
            self._start()

    def _start(self) -> None:
        if self._watcher is None and not self._response_done:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        message = await self._receive()
        # uvicorn also answers `http.disconnect` once the response is complete.
        if message["type"] == "http.disconnect" and not self._response_done:
            self.client_gone = True
            self._gone.set()
            self._task.cancel()

    async def receive(self) -> Message:
        if self._watcher is not None:
            await self._gone.wait()
            return _DISCONNECT
        message = await self._receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            self._body_read = True
            if self._wanted:
                self._start()
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._response_done = True
        await self._send(message)

    async def stop(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and not watcher.done():
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
