"""An OpenAI-compatible streaming engine whose timings are known, for the lab's tests: after
`first_delay` seconds, exactly `max_tokens` one-word chunks `chunk_delay` seconds apart, the
last with the finish, the usage (completion_tokens = max_tokens + `usage_skew`) and [DONE].
`/v1/chat/completions` and `/v1/completions`; `fail_status` answers every request with that
status instead.

Raw asyncio on 127.0.0.1 in a thread of its own, keep-alive, so that nothing between the
schedule and the socket (a framework's buffering) blurs the times the tests check.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Self


@dataclass
class TimedEngine:
    first_delay: float = 0.0
    chunk_delay: float = 0.0
    usage_skew: int = 0
    fail_status: int | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)  # every request's JSON
    port: int = 0

    def __post_init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        self.first_delay = self.chunk_delay = 0.0
        self.usage_skew, self.fail_status = 0, None
        self.bodies.clear()

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the timed engine did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            self._loop.run_forever()
        finally:
            # Stopped with connections open: end their handlers (each closes its writer) and
            # let the loop finish closing those transports, else they are left "closing" and
            # warn (an error under filterwarnings) whenever they are collected, in some
            # later test.
            self._loop.run_until_complete(_drain(server))
            self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = json.loads(await reader.readexactly(length)) if length else {}
                self.bodies.append(body)
                path = head.split(b" ", 2)[1].decode()
                await self._answer(path, body, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str, body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        if self.fail_status is not None or path not in ("/v1/chat/completions", "/v1/completions"):
            status = self.fail_status or 404
            error = json.dumps({"error": {"message": "the engine fell over", "type": "error"}})
            writer.write(
                f"HTTP/1.1 {status} Error\r\ncontent-type: application/json\r\n"
                f"content-length: {len(error)}\r\n\r\n{error}".encode()
            )
            return
        chat = path == "/v1/chat/completions"
        count = int(body.get("max_tokens") or 16)
        await asyncio.sleep(self.first_delay)
        if not body.get("stream"):
            text = "".join(f"w{i} " for i in range(count))
            choice: dict[str, Any] = {"index": 0, "finish_reason": "length"}
            choice |= (
                {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
            )
            usage = {"prompt_tokens": 5, "completion_tokens": count + self.usage_skew}
            usage["total_tokens"] = 5 + usage["completion_tokens"]
            reply = json.dumps(
                {
                    "id": "cmpl-timed",
                    "object": "chat.completion" if chat else "text_completion",
                    "created": 1700000000,
                    "model": body.get("model"),
                    "choices": [choice],
                    "usage": usage,
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(reply), reply)
            )
            return
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for i in range(count):
            if i and self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            choice = {"index": 0, "finish_reason": None}
            choice |= {"delta": {"content": f"w{i} "}} if chat else {"text": f"w{i} "}
            event = _sse(_envelope(body, chat, [choice]))
            if i == count - 1:
                if (body.get("stream_options") or {}).get("include_usage"):
                    done = count + self.usage_skew
                    usage = {
                        "prompt_tokens": 5,
                        "completion_tokens": done,
                        "total_tokens": 5 + done,
                    }
                    event += _sse(_envelope(body, chat, [], usage))
                event += b"data: [DONE]\n\n"
            if writer.is_closing() or reader_gone(writer):
                return  # the client left (a cancelled request)
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        writer.write(b"0\r\n\r\n")


def _envelope(
    body: dict[str, Any], chat: bool, choices: list[Any], usage: Any = None
) -> dict[str, Any]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    out = {"id": "cmpl-timed", "object": kind, "created": 1700000000, "model": body.get("model")}
    return out | {"choices": choices} | ({"usage": usage} if usage else {})


def reader_gone(writer: asyncio.StreamWriter) -> bool:
    transport = writer.transport
    return transport.is_closing() or transport.get_extra_info("socket") is None


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def _drain(server: asyncio.Server) -> None:
    server.close()
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await server.wait_closed()
    for _ in range(3):  # connection_lost runs a turn after close()
        await asyncio.sleep(0)
