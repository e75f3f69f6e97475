"""An open-loop HTTP/1.1 load generator: requests go out on a fixed schedule whatever the
server does, and latency counts from the planned send time, so a slow server cannot slow
the generator down and hide its own queueing (what closed-loop tools and `hey -q` do).

Raw asyncio streams with keep-alive connections, so that at tens of requests per second
the generator's own cost stays in the tens of microseconds per request. Server-sent events
are timestamped one by one as they arrive, for time to first chunk and inter-chunk gaps.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field


@dataclass
class Result:
    planned: float
    status: int = 0
    first: float | None = None  # first `data:` event (streams) or first body byte
    end: float = 0.0
    events: list[float] = field(default_factory=list)  # arrival of each `data:` event
    error: str | None = None
    overhead_ms: float | None = None  # the response's x-hearth-overhead-ms, if it has one

    @property
    def latency(self) -> float:
        return self.end - self.planned

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.planned


# Servers close keep-alive connections idle for a while (uvicorn: 5 s). A request sent on one
# just as it closes fails with no answer, a race of the client's making: like HTTP clients
# (httpx's keepalive_expiry is 5 s), do not reuse a connection idle longer than this.
IDLE_EXPIRY = 3.0

OVERHEAD = b"x-hearth-overhead-ms:"  # what Hearth says it spent (read from the head)


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.idle_since = time.perf_counter()


class OpenLoop:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._idle: list[_Conn] = []

    async def close(self) -> None:
        for conn in self._idle:
            conn.writer.close()
        self._idle.clear()

    async def _connect(self) -> _Conn:
        while self._idle:
            conn = self._idle.pop()
            if time.perf_counter() - conn.idle_since < IDLE_EXPIRY:
                return conn
            conn.writer.close()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return _Conn(reader, writer)

    async def one(self, raw: bytes, planned: float) -> Result:
        result = Result(planned)
        conn = await self._connect()
        try:
            conn.writer.write(raw)
            await self._read(conn.reader, result)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            result.error = repr(exc)
            result.end = time.perf_counter()
            conn.writer.close()
            return result
        conn.idle_since = time.perf_counter()
        self._idle.append(conn)
        return result

    async def _read(self, reader: asyncio.StreamReader, result: Result) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        result.status = int(head.split(b" ", 2)[1])
        lower = head.lower()
        at = lower.find(OVERHEAD)
        if at >= 0:
            result.overhead_ms = float(lower[at + len(OVERHEAD) : lower.index(b"\r\n", at)])
        if b"transfer-encoding: chunked" in lower:
            pending = b""
            while True:
                size = int((await reader.readline()).strip(), 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                now = time.perf_counter()
                pending += data[:-2]
                # Timestamp each complete event when its last byte arrives.
                while (cut := pending.find(b"\n\n")) >= 0:
                    event, pending = pending[:cut], pending[cut + 2 :]
                    if event.startswith(b"data:"):
                        result.events.append(now)
                        if result.first is None:
                            result.first = now
        else:
            at = lower.find(b"content-length:")
            length = int(lower[at + 15 : lower.index(b"\r\n", at)]) if at >= 0 else 0
            await reader.readexactly(length)
            result.first = time.perf_counter()
        result.end = time.perf_counter()

    async def run(
        self, raw: bytes, *, rate: float, count: int, grace: float = 30.0
    ) -> list[Result]:
        """Send `count` requests `1/rate` seconds apart; wait for them, at most `grace`
        seconds after the last was sent (those still running then count as failed)."""
        loop = asyncio.get_running_loop()
        tasks = []
        start = time.perf_counter() + 0.05
        for i in range(count):
            planned = start + i / rate
            delay = planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(loop.create_task(self.one(raw, planned)))
        await asyncio.wait(tasks, timeout=grace)
        results = []
        for i, task in enumerate(tasks):
            if task.done():
                results.append(task.result())
            else:
                task.cancel()
                results.append(Result(start + i / rate, error="not finished in time"))
        return results


def post(path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A keep-alive POST request, as raw bytes."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return (
        f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body
