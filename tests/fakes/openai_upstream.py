"""A small OpenAI-compatible server for tests: real HTTP on 127.0.0.1, in a background thread.

The behaviour of /v1/chat/completions is chosen by the request's `model`:

    ok            a JSON completion (or, with stream=true, the "stream" behaviour)
    stream        `chunk_count` content chunks, `chunk_delay` seconds apart, then [DONE];
                  a usage chunk first when stream_options.include_usage is set
    error-400     400 with an OpenAI error object (param "temperature")
    error-404     404 "model does not exist"
    error-500     500;  error-503: 503
    slow          answers after `slow_delay` seconds (or streams with that delay)
    bad-json      200 with a body that is not JSON
    bad-sse       one good chunk, then a `data:` line that is not JSON
    early-close   two chunks, then the response ends without [DONE]

It is a raw ASGI app rather than a Starlette one so that it can watch `receive()` for
`http.disconnect` while it streams, which is how tests see that a client hung up.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class FakeOpenAIUpstream:
    """Use as a context manager; `base_url` ends in /v1 like a real engine's."""

    port: int = 0
    model_ids: list[str] = field(default_factory=lambda: ["fake-chat", "fake-embed"])
    chunk_count: int = 3
    chunk_delay: float = 0.0
    slow_delay: float = 2.0
    requests: list[RecordedRequest] = field(default_factory=list)
    # Monotonic times at which each event of the latest stream was written.
    sent_at: list[float] = field(default_factory=list)
    # Set when a client hangs up before the latest stream or slow answer was complete.
    disconnected: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAIUpstream:
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
                raise RuntimeError("fake upstream did not start")
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
        payload = orjson.loads(body) if body else None
        self.requests.append(RecordedRequest(scope["method"], scope["path"], headers, payload))

        if scope["path"] == "/v1/models":
            data = [{"id": i, "object": "model", "owned_by": "fake"} for i in self.model_ids]
            await _json(send, 200, {"object": "list", "data": data})
        elif scope["path"] == "/v1/embeddings":
            await _json(send, 200, _embeddings(payload))
        elif scope["path"] == "/v1/chat/completions":
            await self._chat(payload, receive, send)
        else:
            await _json(send, 404, {"detail": "Not Found"})

    async def _chat(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        model = request["model"]
        streaming = request.get("stream", False)
        if model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            message = {
                400: "temperature must be between 0 and 2",
                404: f"The model `{model}` does not exist.",
            }.get(status, "the engine fell over")
            error = {"message": message, "type": "error", "param": None, "code": status}
            if status == 400:
                error["param"] = "temperature"
            await _json(send, status, {"error": error})
        elif model == "bad-json":
            await _send_body(send, 200, b'{"id": "x", "choices": [', "application/json")
        elif model == "slow" and not streaming:
            watcher = asyncio.ensure_future(_wait_disconnect(receive))
            done, _ = await asyncio.wait({watcher}, timeout=self.slow_delay)
            watcher.cancel()
            if done:
                self.disconnected.set()
                return
            await _json(send, 200, _completion(model))
        elif not streaming:
            await _json(send, 200, _completion(model))
        else:
            await self._stream(request, receive, send)

    async def _stream(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        model = request["model"]
        count, delay, done = self.chunk_count, self.chunk_delay, True
        if model == "slow":
            delay = self.slow_delay
        elif model == "early-close":
            count, done = 2, False
        events = [_sse(_chunk(model, f"tok{i} ", role=i == 0)) for i in range(count)]
        events.append(_sse(_chunk(model, None, finish="stop")))
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count}
            events.append(_sse({**_chunk(model, None), "choices": [], "usage": usage}))
        if model == "bad-sse":
            events = [*events[:1], b"data: {oops\n\n"]
        if done:
            events.append(b"data: [DONE]\n\n")

        self.sent_at.clear()
        self.disconnected.clear()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            for i, event in enumerate(events):
                if i and delay:
                    await asyncio.wait({watcher}, timeout=delay)
                if watcher.done():
                    self.disconnected.set()
                    return
                self.sent_at.append(time.monotonic())
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:  # newer uvicorn raises on send after a disconnect
            self.disconnected.set()
        finally:
            watcher.cancel()


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, payload: Any) -> None:
    await _send_body(send, status, orjson.dumps(payload), "application/json")


async def _send_body(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _completion(model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello from the fake."},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
        "system_fingerprint": "fake",
    }


def _chunk(
    model: str, content: str | None, *, role: bool = False, finish: str | None = None
) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def _embeddings(request: dict[str, Any]) -> dict[str, Any]:
    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    # Reversed on purpose: clients must order by `index`, not by position.
    data = [
        {"object": "embedding", "index": i, "embedding": [float(len(text)), float(i), 0.5]}
        for i, text in reversed(list(enumerate(texts)))
    ]
    tokens = sum(len(text.split()) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
