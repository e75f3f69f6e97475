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
    loop          a sentence, then "A: " over and over (`chunk_count` times), as a small
                  model that loops

Images (OpenAI `image_url` content parts) are checked whatever the model, as a vision
engine would: each must be a `data:image/...;base64,` URL whose base64 decodes to an
image of the type it names (400 otherwise); the decoded ones are kept in `images`, in
order, as (content type, bytes).

Whatever the model, these attributes change how the server behaves (for failover tests):

    fail_status   answer every chat and embeddings request with this status
    hang          wait this many seconds (or until the client leaves) before answering
    report        what load the server reports at its root, beside /v1: "vllm" (/metrics
                  with vLLM's gauges), "slots" (llama.cpp's /slots); None: both 404
    running, waiting, kv_cache   the numbers reported
    embedding_dimensions   length of each embedding: 3 (length of the text, index, 0.5) or
                  more, padded with numbers that depend on the text only

`kill()` stops the server (its port refuses connections) and `revive()` starts it again on
the same port. The server itself (thread, recording, disconnects) is
`tests.fakes._server.FakeServer`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from tests.fakes._server import FakeServer, Receive, RecordedRequest, Send


@dataclass(kw_only=True)
class FakeOpenAIUpstream(FakeServer):
    """Use as a context manager; `base_url` ends in /v1 like a real engine's."""

    base_path: ClassVar[str] = "/v1"

    model_ids: list[str] = field(default_factory=lambda: ["fake-chat", "fake-embed"])
    fail_status: int | None = None
    hang: float = 0.0
    report: str | None = None
    running: int = 0
    waiting: int = 0
    kv_cache: float = 0.0
    embedding_dimensions: int = 3
    images: list[tuple[str, bytes]] = field(default_factory=list)

    def reset(self) -> None:
        super().reset()
        self.fail_status, self.hang, self.report = None, 0.0, None
        self.running, self.waiting, self.kv_cache = 0, 0, 0.0
        self.images = []

    def kill(self) -> None:
        self.__exit__()

    def revive(self) -> None:
        self.__enter__()

    @property
    def chats(self) -> int:
        """Chat completion requests received so far."""
        return sum(1 for r in self.requests if r.path == "/v1/chat/completions")

    async def _respond(self, request: RecordedRequest, receive: Receive, send: Send) -> None:
        if request.path in ("/v1/chat/completions", "/v1/embeddings"):
            if self.hang and await self._hung_up_within(receive, self.hang):
                return
            if self.fail_status is not None:
                error = {"message": "the engine fell over", "type": "error", "param": None}
                await self._send_json(send, self.fail_status, {"error": error})
                return
        if request.path == "/metrics" and self.report == "vllm":
            await self._send_body(send, 200, self._metrics(), "text/plain; version=0.0.4")
        elif request.path == "/slots" and self.report == "slots":
            slots = [{"id": i, "is_processing": i < self.running} for i in range(4)]
            await self._send_json(send, 200, slots)
        elif request.path == "/v1/models":
            data = [{"id": i, "object": "model", "owned_by": "fake"} for i in self.model_ids]
            await self._send_json(send, 200, {"object": "list", "data": data})
        elif request.path == "/v1/embeddings":
            await self._send_json(send, 200, _embeddings(request.json, self.embedding_dimensions))
        elif request.path == "/v1/chat/completions":
            await self._chat(request.json, receive, send)
        else:
            await self._send_json(send, 404, {"detail": "Not Found"})

    def _metrics(self) -> bytes:
        # vLLM V1's gauges, one sample per served model, as its /metrics shows them.
        labels = '{engine="0",model_name="fake-chat"}'
        return (
            "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
            "# TYPE vllm:num_requests_running gauge\n"
            f"vllm:num_requests_running{labels} {float(self.running)}\n"
            "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
            "# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{labels} {float(self.waiting)}\n"
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f"vllm:kv_cache_usage_perc{labels} {self.kv_cache}\n"
        ).encode()

    async def _chat(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        model = request["model"]
        streaming = request.get("stream", False)
        problem = self._read_images(request)
        if problem is not None:
            error = {"message": problem, "type": "invalid_request_error", "param": "messages"}
            await self._send_json(send, 400, {"error": error})
        elif model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            message = {
                400: "temperature must be between 0 and 2",
                404: f"The model `{model}` does not exist.",
            }.get(status, "the engine fell over")
            error = {"message": message, "type": "error", "param": None, "code": status}
            if status == 400:
                error["param"] = "temperature"
            await self._send_json(send, status, {"error": error})
        elif model == "bad-json":
            await self._send_body(send, 200, b'{"id": "x", "choices": [', "application/json")
        elif model == "slow" and not streaming:
            if not await self._hung_up_within(receive, self.slow_delay):
                await self._send_json(send, 200, _completion(model))
        elif not streaming:
            await self._send_json(send, 200, _completion(model))
        else:
            await self._stream(request, receive, send)

    def _read_images(self, request: dict[str, Any]) -> str | None:
        """Keep the request's images (decoded); what is wrong with one, if anything."""
        found = []
        for message in request.get("messages", []):
            content = message.get("content")
            for part in content if isinstance(content, list) else []:
                if part.get("type") != "image_url":
                    continue
                url = (part.get("image_url") or {}).get("url", "")
                header, _, payload = url.partition(",")
                if not (header.startswith("data:image/") and header.endswith(";base64")):
                    return f"an image must be a base64 data URL, got {url[:40]!r}"
                try:
                    data = base64.b64decode(payload, validate=True)
                except binascii.Error:
                    return "an image's base64 does not decode"
                kind = header.removeprefix("data:").removesuffix(";base64")
                if not data.startswith(_SIGNATURES.get(kind, b"\0never")):
                    return f"an image's bytes are not {kind}"
                found.append((kind, data))
        self.images.extend(found)
        return None

    async def _stream(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        model = request["model"]
        count, delay, done = self.chunk_count, self.chunk_delay, True
        if model == "slow":
            delay = self.slow_delay
        elif model == "early-close":
            count, done = 2, False
        pieces = [f"tok{i} " for i in range(count)]
        if model == "loop":
            pieces = ["Here is how: ", *["A: "] * max(count - 1, 0)]
        events = [_sse(_chunk(model, piece, role=i == 0)) for i, piece in enumerate(pieces)]
        events.append(_sse(_chunk(model, None, finish="stop")))
        if (request.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 5, "completion_tokens": count, "total_tokens": 5 + count}
            events.append(_sse({**_chunk(model, None), "choices": [], "usage": usage}))
        if model == "bad-sse":
            events = [*events[:1], b"data: {oops\n\n"]
        if done:
            events.append(b"data: [DONE]\n\n")

        await self._send_stream(events, "text/event-stream", delay, receive, send)


_SIGNATURES = {
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff",
    "image/gif": b"GIF8",
    "image/webp": b"RIFF",
}


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


def _vector(text: str, index: int, dimensions: int) -> list[float]:
    if dimensions <= 3:
        return [float(len(text)), float(index), 0.5]
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = random.Random(seed)
    return [1.0, 0.0, 0.5] + [rng.uniform(-1, 1) for _ in range(dimensions - 3)]


def _embeddings(request: dict[str, Any], dimensions: int) -> dict[str, Any]:
    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    # Reversed on purpose: clients must order by `index`, not by position.
    data = [
        {"object": "embedding", "index": i, "embedding": _vector(text, i, dimensions)}
        for i, text in reversed(list(enumerate(texts)))
    ]
    tokens = sum(len(text.split()) for text in texts)
    return {
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
