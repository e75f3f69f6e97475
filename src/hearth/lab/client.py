"""One benchmark request against an OpenAI-compatible endpoint, streamed and timestamped:
`/chat/completions` or `/completions`, with usage asked for, each chunk's arrival kept."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from hearth.lab._http import Connections, Origin
from hearth.lab.datasets import Prompt
from hearth.lab.records import RequestRecord


@dataclass
class Target:
    """Where the load goes: any OpenAI-compatible base URL (ending in /v1)."""

    base_url: str
    model: str
    api: Literal["chat", "completions"] = "chat"
    api_key: str | None = None
    # Sent as they are (an engine's own options, e.g. vLLM's ignore_eos); Hearth's gateway
    # refuses what it cannot honour, so nothing here is silently dropped on the way.
    extra_body: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = 0.0
    timeout: float = 600.0  # seconds for one request, from its send

    def origin(self) -> Origin:
        return Origin.parse(self.base_url)

    def body(self, prompt: Prompt) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": prompt.max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        if self.api == "chat":
            body["messages"] = [{"role": "user", "content": prompt.text}]
        else:
            body["prompt"] = prompt.text
        return orjson.dumps(body | self.extra_body)

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def path(self) -> str:
        return "/chat/completions" if self.api == "chat" else "/completions"


async def send(
    conns: Connections,
    raw: bytes,
    record: RequestRecord,
    texts: list[str],
    timeout: float,  # noqa: ASYNC109 (per request, inside the run's own cancellation)
) -> None:
    """Write the prepared request now and fill the record as the answer streams; the output's
    text goes to `texts` (counted by the client's tokenizer after the stage, off the clock)."""
    record.sent = time.perf_counter()
    response = None
    try:
        async with asyncio.timeout(timeout):
            response = await conns.send(raw)
            record.status = response.status
            if response.status != 200:
                body = b"".join([part async for part in response.body()])
                record.error = _error_message(response.status, body)
                return
            await _read_events(response.body(), record, texts)
    except TimeoutError:
        record.error = f"no complete answer in {timeout:g} s"
    except (OSError, asyncio.IncompleteReadError, ValueError, orjson.JSONDecodeError) as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:300]
    except BaseException:  # cancelled (the run stops): the connection is mid-answer
        if response is not None:
            response.close()
        raise
    finally:
        record.end = time.perf_counter()
        if record.error is not None and response is not None:
            response.close()  # not read to its end: not reusable


async def _read_events(body: Any, record: RequestRecord, texts: list[str]) -> None:
    pending = b""
    done = False
    async for data in body:
        now = time.perf_counter()
        pending += data.replace(b"\r\n", b"\n") if b"\r" in data else data
        while (cut := pending.find(b"\n\n")) >= 0:
            event, pending = pending[:cut], pending[cut + 2 :]
            if not event.startswith(b"data:"):
                continue  # comments (pings), event names
            payload = event[5:].strip()
            if payload == b"[DONE]":
                done = True
                continue
            chunk = orjson.loads(payload)
            if "error" in chunk:
                record.error = str(chunk["error"].get("message", chunk["error"]))[:300]
                continue
            if usage := chunk.get("usage"):
                record.server_output_tokens = usage.get("completion_tokens")
                record.server_input_tokens = usage.get("prompt_tokens")
            text = "".join(_texts(chunk))
            if text:
                texts.append(text)
                record.chunks.append(now)
                if record.first is None:
                    record.first = now
    if not done and record.error is None:
        record.error = "the stream ended without [DONE]"


def _texts(chunk: dict[str, Any]) -> list[str]:
    out = []
    for choice in chunk.get("choices") or ():
        if (text := choice.get("text")) is not None:  # completions
            out.append(text)
        elif delta := choice.get("delta"):
            # A reasoning model's thinking is output too: it costs the same tokens.
            out.extend(t for t in (delta.get("reasoning_content"), delta.get("content")) if t)
    return out


def _error_message(status: int, body: bytes) -> str:
    try:
        error = orjson.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (orjson.JSONDecodeError, AttributeError):
        message = body[:200].decode("utf-8", errors="replace")
    return f"HTTP {status}: {message}"[:300]
