"""What the fake upstreams share: real HTTP on 127.0.0.1, served by uvicorn in a background
thread, with every request recorded and streams that notice when the client hangs up.

A fake subclasses `FakeServer` and answers in `_respond`; its own module keeps its
protocol's routes, payloads and the behaviours chosen by a request's `model`.

It is a raw ASGI app rather than a Starlette one so that it can watch `receive()` for
`http.disconnect` while it streams, which is how tests see that a client hung up.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import orjson
import uvicorn

Scope = dict[str, Any]
Receive = Any
Send = Any


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    json: Any
    query: str = ""


@dataclass(kw_only=True)
class FakeServer:
    """Use a subclass as a context manager; it serves until the block ends."""

    # Appended to the server's root to make `base_url`, as a real client is configured.
    base_path: ClassVar[str] = ""
    json_content_type: ClassVar[str] = "application/json"

    port: int = 0
    chunk_count: int = 3
    chunk_delay: float = 0.0
    slow_delay: float = 2.0
    requests: list[RecordedRequest] = field(default_factory=list)
    # Monotonic times at which each part of the latest stream was written.
    sent_at: list[float] = field(default_factory=list)
    # Set when a client hangs up before the latest stream or slow answer was complete.
    disconnected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    def __enter__(self) -> Self:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._socket = sock
        # log_config=None: leave the test process's logging configuration alone.
        config = uvicorn.Config(
            self._app,
            interface="asgi3",  # autodetection takes a bound method for ASGI2
            lifespan="off",
            log_config=None,
            access_log=False,
            loop="asyncio",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()

    def reset(self) -> None:
        """Back to the default behaviour, with no recorded history (for a shared server)."""
        self.chunk_count, self.chunk_delay, self.slow_delay = 3, 0.0, 2.0
        self.requests.clear()
        self.sent_at.clear()
        self.disconnected.clear()

    def last(self, path: str) -> RecordedRequest:
        return next(r for r in reversed(self.requests) if r.path == path)

    # --- for subclasses ------------------------------------------------------------------

    async def _respond(self, request: RecordedRequest, receive: Receive, send: Send) -> None:
        """Answer `request` (already recorded) through `send`."""
        raise NotImplementedError

    async def _hung_up_within(self, receive: Receive, delay: float) -> bool:
        """Wait up to `delay` seconds; True, with `disconnected` set, if the client left."""
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        done, _ = await asyncio.wait({watcher}, timeout=delay)
        watcher.cancel()
        if done:
            self.disconnected.set()
        return bool(done)

    async def _send_json(self, send: Send, status: int, payload: Any) -> None:
        await self._send_body(send, status, orjson.dumps(payload), self.json_content_type)

    async def _send_body(self, send: Send, status: int, body: bytes, content_type: str) -> None:
        headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _send_stream(
        self, parts: list[bytes], content_type: str, delay: float, receive: Receive, send: Send
    ) -> None:
        """A 200 that writes `parts` `delay` seconds apart, until the client hangs up."""
        self.sent_at.clear()
        self.disconnected.clear()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", content_type.encode())],
            }
        )
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            for i, part in enumerate(parts):
                if i and delay:
                    await asyncio.wait({watcher}, timeout=delay)
                if watcher.done():
                    self.disconnected.set()
                    return
                self.sent_at.append(time.monotonic())
                await send({"type": "http.response.body", "body": part, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # newer uvicorn raises on send after a disconnect
            self.disconnected.set()
        finally:
            watcher.cancel()

    # --- the app -------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            payload = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:  # a form (OAuth's token endpoint), kept as text
            payload = body.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        request = RecordedRequest(scope["method"], scope["path"], headers, payload, query)
        self.requests.append(request)
        await self._respond(request, receive, send)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
