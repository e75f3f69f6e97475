"""A no-op streaming OpenAI-compatible server for load generators (`lab_client.py`): raw
asyncio, HTTP/1.1 keep-alive, pre-built answers, so that it out-runs the clients it serves.

    POST /v1/chat/completions, /v1/completions
        streamed: `--chunks` content chunks as SSE (one word each), a finish chunk, a usage
        chunk when stream_options.include_usage, then [DONE]. Model "mock": all at once;
        model "timed-F-G": the head at once, the first content chunk F ms after the
        request arrived, then one every G ms, each on its own schedule from the arrival (no
        drift from late timers); finish, usage and [DONE] right after the last one.
        Not streamed: one fixed JSON answer.
    GET  /health, /v1/models

Run: python bench/_lab_upstream.py --port 9000 [--chunks 20]   (prints "ready")
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re

_TIMED = re.compile(rb'"model"\s*:\s*"timed-(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)"')
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
_ID = {"id": "cmpl-bench", "created": 1700000000, "model": "mock"}


def _sse(payload: dict) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event


def _reply(status: str, body: bytes, kind: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (
        status.encode(),
        kind,
        len(body),
        body,
    )


class Answers:
    """Every byte the server writes, built once: per API, the head, the content events, the
    finish event, the usage event and the end."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        self.head = head + b"transfer-encoding: chunked\r\n\r\n"
        self.end = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
        usage = {"prompt_tokens": 9, "completion_tokens": chunks, "total_tokens": 9 + chunks}
        chat = {**_ID, "object": "chat.completion.chunk"}
        text = {**_ID, "object": "text_completion"}
        self.events = {
            "chat": [
                _sse({**chat, "choices": [{"index": 0, "delta": _delta(i), "finish_reason": None}]})
                for i in range(chunks)
            ],
            "text": [
                _sse({**text, "choices": [{"index": 0, "text": f"tok{i} ", "finish_reason": None}]})
                for i in range(chunks)
            ],
        }
        self.finish = {
            "chat": _sse({**chat, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            "text": _sse({**text, "choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}),
        }
        self.usage = {
            "chat": _sse({**chat, "choices": [], "usage": usage}),
            "text": _sse({**text, "choices": [], "usage": usage}),
        }
        whole = {
            **_ID,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the lab upstream."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15},
        }
        self.json = _reply("200 OK", json.dumps(whole).encode())
        models = {"object": "list", "data": [{"id": "mock", "object": "model"}]}
        self.models = _reply("200 OK", json.dumps(models).encode())
        self.health = _reply("200 OK", b"{}")
        self.not_found = _reply("404 Not Found", b"")

    def tail(self, api: str, body: bytes) -> bytes:
        return self.finish[api] + (self.usage[api] if _USAGE.search(body) else b"") + self.end


def _delta(i: int) -> dict:
    return {"role": "assistant", "content": f"tok{i} "} if i == 0 else {"content": f"tok{i} "}


class Upstream(asyncio.Protocol):
    answers: Answers  # set by main()

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a timed stream is being written: later requests wait for it
        self.task: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._serve()

    def _serve(self) -> None:
        a = self.answers
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            found = _LENGTH.search(head)
            length = int(found[1]) if found else 0
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            path = head.split(b" ", 2)[1]
            if path.startswith((b"/v1/chat/completions", b"/v1/completions")):
                api = "chat" if b"/chat/" in path else "text"
                if not _STREAM.search(body):
                    self.transport.write(a.json)
                elif timed := _TIMED.search(body):
                    self.busy = True
                    first, gap = float(timed[1]) / 1000, float(timed[2]) / 1000
                    arrived = asyncio.get_running_loop().time()
                    self.task = asyncio.ensure_future(self._timed(api, body, arrived + first, gap))
                    return
                else:
                    self.transport.write(a.head + b"".join(a.events[api]) + a.tail(api, body))
            elif path.startswith(b"/v1/models"):
                self.transport.write(a.models)
            elif path.startswith(b"/health"):
                self.transport.write(a.health)
            else:
                self.transport.write(a.not_found)

    async def _timed(self, api: str, body: bytes, first: float, gap: float) -> None:
        """The head now, content event i at `first` + i·`gap` (loop time)."""
        a, loop = self.answers, asyncio.get_running_loop()
        if self.transport is None:
            return
        self.transport.write(a.head)
        for i, event in enumerate(a.events[api]):
            await asyncio.sleep(first + i * gap - loop.time())
            if self.transport is None:
                return
            last = i == a.chunks - 1
            self.transport.write(event + a.tail(api, body) if last else event)
        self.busy = False
        self._serve()


async def main(port: int, chunks: int) -> None:
    Upstream.answers = Answers(chunks)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per answer")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.port, args.chunks))
