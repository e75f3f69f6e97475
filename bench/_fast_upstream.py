"""A tiny, fast OpenAI-compatible upstream for gateway benchmarks: raw asyncio, HTTP/1.1
keep-alive, fixed answers. It must out-run the gateways in front of it, so it parses only
what it needs (the request line, Content-Length and two flags in the body) and writes
pre-built bytes.

    POST /v1/chat/completions   fixed JSON; with "stream": true, 20 content chunks as SSE
                                (a usage chunk too when stream_options.include_usage), then
                                [DONE]. Model "mock-gapNN" waits NN ms between chunks.
    GET  /v1/models             the models above

Run: python bench/_fast_upstream.py --port 9000   (prints "ready" when listening)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re

CHUNKS = 20
MODELS = ["mock", "mock-gap20"]
_GAP = re.compile(rb'"model"\s*:\s*"mock-gap(\d+)"')
_STREAM = re.compile(rb'"stream"\s*:\s*true')
_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


def _completion() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "mock",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello from the fast upstream."},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16},
        },
        separators=(",", ":"),
    ).encode()


def _event(payload: dict) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event


def _chunk(i: int | None, finish: str | None = None) -> dict:
    delta: dict = {}
    if i == 0:
        delta["role"] = "assistant"
    if i is not None:
        delta["content"] = f"tok{i} "
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "mock",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


COMPLETION = _completion()
JSON_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(COMPLETION), COMPLETION)
)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
SSE_EVENTS = [_event(_chunk(i)) for i in range(CHUNKS)]
SSE_FINISH = _event(_chunk(None, "stop"))
SSE_USAGE = _event(
    {
        **_chunk(None),
        "choices": [],
        "usage": {"prompt_tokens": 9, "completion_tokens": CHUNKS, "total_tokens": 9 + CHUNKS},
    }
)
SSE_END = b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
_models = json.dumps(
    {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "bench"} for m in MODELS]}
).encode()
MODELS_REPLY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_models), _models)
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class Upstream(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a delayed stream is being written; later requests wait
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
            if path.startswith(b"/v1/chat/completions"):
                if _STREAM.search(body):
                    gap = _GAP.search(body)
                    if gap:
                        self.busy = True
                        self.task = asyncio.ensure_future(
                            self._slow_stream(int(gap[1]) / 1000, body)
                        )
                        return
                    self.transport.write(b"".join(self._stream_parts(body)))
                else:
                    self.transport.write(JSON_REPLY)
            elif path.startswith(b"/v1/models"):
                self.transport.write(MODELS_REPLY)
            else:
                self.transport.write(NOT_FOUND)

    @staticmethod
    def _stream_parts(body: bytes) -> list[bytes]:
        parts = [SSE_HEAD, *SSE_EVENTS, SSE_FINISH]
        if _USAGE.search(body):
            parts.append(SSE_USAGE)
        parts.append(SSE_END)
        return parts

    async def _slow_stream(self, gap: float, body: bytes) -> None:
        parts = self._stream_parts(body)
        # Head and first content event together, then the other content events `gap`
        # seconds apart; the finish, usage and [DONE] events follow the last one at once.
        events = [parts[0] + parts[1], *parts[2:]]
        for i, part in enumerate(events):
            if self.transport is None:
                return
            if 0 < i < CHUNKS:
                await asyncio.sleep(gap)
            self.transport.write(part)
        self.busy = False
        self._serve()


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(args.port))
