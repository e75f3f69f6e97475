"""A small Ollama server for tests: real HTTP on 127.0.0.1, in a background thread.

It speaks Ollama's native API (https://github.com/ollama/ollama/blob/main/docs/api.md):
/api/chat (JSON, or NDJSON with stream=true, Ollama's default), /api/embed, /api/tags,
/api/ps, /api/pull and `/`. `tests/engines/test_ollama_engine.py` checks it against the official
`ollama` SDK. The behaviour of /api/chat and /api/embed is chosen by the request's `model`:

    (anything else)  a reply; streamed as `chunk_count` content lines `chunk_delay` seconds
                     apart, then the final `done: true` line with the token counts
    length           done_reason "length" instead of "stop"
    thinker          a `thinking` line before the content, as reasoning models send
    slow             answers after `slow_delay` seconds (or streams with that delay)
    busy             503 "server busy", Ollama's answer when its queue is full
    missing          404 `model "missing" not found, try pulling it first`
    error-NNN        status NNN with an Ollama error object (400, 429, 500, 502)
    bad-json         200 with a body that is not JSON
    bad-ndjson       one good line, then a line that is not JSON
    early-close      two lines, then the response ends without a `done: true` line
    mid-error        one good line, then `{"error": ...}`, as when a runner crashes
    tool-caller      with `tools`, a call of the first tool (`{"city": "Paris"}`), streamed
                     in a line of its own before the final one, as Ollama sends it

Asked for `logprobs`, each content line (or the reply) carries one entry per piece, with
`top_logprobs` entries when asked, in Ollama's shape (OpenAI's fields).

/api/pull streams Ollama's progress lines (manifest, one layer in `chunk_count` steps,
verifying, writing, success), or for a `model` named `missing`, the registry's error line.

/api/show answers `capabilities` (["completion"], with "vision" for a model whose name has
"vision" in it); the images /api/chat receives (base64, decoded) are kept in `images`.

The server itself (thread, recording, disconnects) is `tests.fakes._server.FakeServer`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from tests.fakes._server import FakeServer, Receive, RecordedRequest, Send

# Ollama's timestamps carry nanoseconds and the server's UTC offset.
CREATED_AT = "2025-01-09T10:35:38.640766017+01:00"
_ERRORS = {
    400: "json: cannot unmarshal string into Go struct field Options.temperature of type float32",
    429: "too many requests",
    500: "llama runner process has terminated: exit status 2",
    502: "upstream connect error",
}


@dataclass(kw_only=True)
class FakeOllama(FakeServer):
    """Use as a context manager; `base_url` is the server's root, like Ollama's."""

    json_content_type: ClassVar[str] = "application/json; charset=utf-8"

    model_names: list[str] = field(
        default_factory=lambda: ["llama3.2:latest", "nomic-embed-text:latest"]
    )
    loaded: list[str] = field(default_factory=lambda: ["llama3.2:latest"])
    tags_delay: float = 0.0
    images: list[bytes] = field(default_factory=list)

    def reset(self) -> None:
        super().reset()
        self.tags_delay = 0.0
        self.images = []

    async def _respond(self, request: RecordedRequest, receive: Receive, send: Send) -> None:
        path, method, payload = request.path, request.method, request.json
        if path == "/" and method in ("GET", "HEAD"):
            await self._send_body(send, 200, b"Ollama is running", "text/plain; charset=utf-8")
        elif path == "/api/tags" and method == "GET":
            if self.tags_delay and await self._hung_up_within(receive, self.tags_delay):
                return
            models = [_model_entry(n) for n in self.model_names]
            await self._send_json(send, 200, {"models": models})
        elif path == "/api/ps" and method == "GET":
            await self._send_json(send, 200, {"models": [_loaded_entry(n) for n in self.loaded]})
        elif path == "/api/embed" and method == "POST":
            if not await self._failed(send, payload["model"]):
                await self._send_json(send, 200, _embeddings(payload))
        elif path == "/api/pull" and method == "POST":
            await self._send_stream(
                _pull_lines(payload["model"], self.chunk_count), "application/x-ndjson",
                self.chunk_delay, receive, send,
            )  # fmt: skip
        elif path == "/api/chat" and method == "POST":
            for message in payload.get("messages", []):
                self.images += [base64.b64decode(i) for i in message.get("images") or []]
            await self._chat(payload, receive, send)
        elif path == "/api/show" and method == "POST":
            vision = ["vision"] if "vision" in payload["model"] else []
            await self._send_json(send, 200, {"capabilities": ["completion", *vision]})
        else:
            # Ollama's router (Gin) answers unknown paths in plain text, not JSON.
            await self._send_body(send, 404, b"404 page not found", "text/plain")

    async def _chat(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        model = request["model"]
        if await self._failed(send, model):
            return
        # Ollama streams unless told not to.
        if request.get("stream", True):
            await self._stream(request, receive, send)
        elif model == "bad-json":
            await self._send_body(
                send, 200, b'{"model": "bad-json", "message": {', "application/json"
            )
        elif model == "slow":
            if not await self._hung_up_within(receive, self.slow_delay):
                await self._send_json(send, 200, _reply(model, "Hello from the fake."))
        elif model == "tool-caller" and request.get("tools"):
            reply = _reply(model, "")
            reply["message"]["tool_calls"] = [_tool_call(request)]
            await self._send_json(send, 200, reply)
        else:
            thinking = "Let me think." if model == "thinker" else None
            reply = _reply(model, "Hello from the fake.", thinking=thinking)
            await self._send_json(send, 200, reply | _logprobs(request, reply["message"]))

    async def _stream(self, request: dict[str, Any], receive: Receive, send: Send) -> None:
        model = request["model"]
        count, delay = self.chunk_count, self.chunk_delay
        if model == "slow":
            delay = self.slow_delay
        lines = [_part(model, f"tok{i} ", request=request) for i in range(count)]
        if model == "tool-caller" and request.get("tools"):
            call = _message("") | {"tool_calls": [_tool_call(request)]}
            line = {"model": model, "created_at": CREATED_AT, "message": call, "done": False}
            lines = [orjson.dumps(line) + b"\n"]
        if model == "thinker":
            lines.insert(0, _part(model, "", thinking="Let me think."))
        lines.append(_final(model, completion_tokens=count))
        if model == "bad-ndjson":
            lines = [lines[0], b"{oops\n"]
        elif model == "early-close":
            lines = lines[:2]
        elif model == "mid-error":
            error = "an error was encountered while running the model: unexpected EOF"
            lines = [lines[0], orjson.dumps({"error": error}) + b"\n"]

        await self._send_stream(lines, "application/x-ndjson", delay, receive, send)

    async def _failed(self, send: Send, model: str) -> bool:
        """Answer with the error `model` asks for; False when it asks for none."""
        if model == "busy":
            status = 503
            # Ollama's ErrMaxQueue text, two spaces included.
            message = "server busy, please try again.  maximum pending requests exceeded"
        elif model == "missing":
            status, message = 404, f'model "{model}" not found, try pulling it first'
        elif model.startswith("error-"):
            status = int(model.removeprefix("error-"))
            message = _ERRORS.get(status, "something went wrong")
        else:
            return False
        await self._send_json(send, status, {"error": message})
        return True


def _message(content: str, thinking: str | None = None) -> dict[str, Any]:
    message = {"role": "assistant", "content": content}
    if thinking is not None:
        message["thinking"] = thinking
    return message


def _part(
    model: str, content: str, *, thinking: str | None = None, request: dict[str, Any] | None = None
) -> bytes:
    message = _message(content, thinking)
    line = {"model": model, "created_at": CREATED_AT, "message": message, "done": False}
    return orjson.dumps(line | _logprobs(request or {}, message)) + b"\n"


def _tool_call(request: dict[str, Any]) -> dict[str, Any]:
    name = request["tools"][0]["function"]["name"]
    return {"function": {"name": name, "arguments": {"city": "Paris"}}}


def _logprobs(request: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    if not request.get("logprobs") or not message["content"]:
        return {}
    top = request.get("top_logprobs") or 0
    text = message["content"]
    entry = {"token": text, "logprob": -0.25, "bytes": list(text.encode())}
    alternatives = [{"token": f"alt{i}", "logprob": -1.0 - i} for i in range(top)]
    return {"logprobs": [entry | ({"top_logprobs": alternatives} if top else {})]}


def _stats(model: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "done_reason": "length" if model == "length" else "stop",
        "done": True,
        "total_duration": 5191566416,
        "load_duration": 2154458,
        "prompt_eval_count": prompt_tokens,
        "prompt_eval_duration": 383809000,
        "eval_count": completion_tokens,
        "eval_duration": 4799921000,
    }


def _final(model: str, *, completion_tokens: int) -> bytes:
    line = {"model": model, "created_at": CREATED_AT, "message": _message("")}
    return orjson.dumps(line | _stats(model, 5, completion_tokens)) + b"\n"


def _reply(model: str, content: str, *, thinking: str | None = None) -> dict[str, Any]:
    reply = {"model": model, "created_at": CREATED_AT, "message": _message(content, thinking)}
    return reply | _stats(model, 7, 5)


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }


def _model_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": CREATED_AT,
        "size": 2019393189,
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        "details": _details(),
    }


def _loaded_entry(name: str) -> dict[str, Any]:
    entry = _model_entry(name)
    del entry["modified_at"]
    return entry | {
        "expires_at": "2025-01-09T10:40:38.640766017+01:00",
        "size_vram": 2019393189,
        "context_length": 4096,
    }


def _embeddings(request: dict[str, Any]) -> dict[str, Any]:
    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    return {
        "model": request["model"],
        # Unlike OpenAI's, Ollama's vectors carry no index: they are in input order.
        "embeddings": [[float(len(text)), float(i), 0.5] for i, text in enumerate(texts)],
        "total_duration": 14143917,
        "load_duration": 1019500,
        "prompt_eval_count": sum(len(text.split()) for text in texts),
    }


def _pull_lines(model: str, steps: int) -> list[bytes]:
    """What Ollama streams while pulling (its registry's error when the model is unknown)."""
    if model == "missing":
        return [
            orjson.dumps({"status": "pulling manifest"}) + b"\n",
            orjson.dumps({"error": "pull model manifest: file does not exist"}) + b"\n",
        ]
    digest, total = "sha256:" + "ab" * 32, 1000 * steps
    lines = [{"status": "pulling manifest"}]
    lines += [
        {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total,
         "completed": 1000 * (i + 1)}
        for i in range(steps)
    ]  # fmt: skip
    lines += [{"status": s} for s in ("verifying sha256 digest", "writing manifest", "success")]
    return [orjson.dumps(line) + b"\n" for line in lines]
