"""The CPU engine that serves many requests at once: llama.cpp's own `llama-server`, one
child process per model (_llama_server_process.py), reached over a Unix socket.

llama-server batches continuously: its `parallel` slots decode together, a new request
starts between two decode steps, long prompts are evaluated in chunks while the others
keep generating, and a finished prompt stays in its cache for the next request with the
same prefix. Hearth keeps what it adds around an engine: the model's checks (token
ceiling, `request_seconds`), a bounded queue (llama-server's own is not: beyond `parallel`
slots and `max_waiting` more, 503 with Retry-After), usage in Hearth's shape, and the load
the balancer and /metrics report. The HTTP side is the `openai` adapter's, over the socket.

The engine of kind `llamacpp` is this one when the binary is found (`make` builds it from
the llama.cpp that llama-cpp-python vendors, same CPU flags), else the in-process one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson

from hearth.config import LlamaCppEngineConfig, LlamaCppModelConfig, ModelConfig, OpenAIEngineConfig
from hearth.engines import _llama_server_params as params
from hearth.engines import _llama_server_requests as completions
from hearth.engines._llama_server_process import (
    LlamaServerProcess,
    ServerOptions,
    find_binary,
)
from hearth.engines._llama_server_requests import sampling
from hearth.engines.base import Engine, EngineLoad
from hearth.engines.llamacpp import (
    LlamaCppEngine,
    _check_token_limit,
    _messages,
    assemble,
    expand_models,
)
from hearth.engines.openai import OpenAIEngine
from hearth.engines.protocol import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Completion,
    CompletionRequest,
    Usage,
)
from hearth.errors import (
    ConfigError,
    ContextLengthExceeded,
    EngineBusy,
    HearthError,
    ModelNotFound,
)

log = logging.getLogger(__name__)

_DEFAULT_MAX_WAITING = 8  # Settings fills max_waiting from engine_max_waiting


def llamacpp_engine(config: LlamaCppEngineConfig) -> Engine:
    """The engine for a `llamacpp` entry: llama-server when it is installed (or asked
    for), else llama-cpp-python in-process, said once in the log."""
    if config.backend == "in-process":
        return LlamaCppEngine(config)
    binary = find_binary(config.llama_server)
    if binary is not None:
        return LlamaServerEngine(config, binary)
    where = str(config.llama_server) if config.llama_server else "beside Python or on PATH"
    if config.backend == "llama-server":
        raise ConfigError(
            f"engine '{config.name}': no llama-server binary ({where}); build it with "
            '`make install`, or set backend = "in-process"'
        )
    log.warning(
        "engine %r: llama-server not found (%s), so each model generates one request at a "
        "time, in-process; `make install` builds it",
        config.name,
        where,
    )
    return LlamaCppEngine(config)


class _Upstream(OpenAIEngine):
    """The `openai` adapter, connecting to one child's Unix socket."""

    def __init__(self, config: OpenAIEngineConfig, socket: Path) -> None:
        super().__init__(config)
        self._socket = str(socket)

    def _unix_socket(self) -> str:
        return self._socket


class _Throughput:
    """Tokens generated in the last `window` seconds, in one-second buckets."""

    def __init__(self, window: int = 10) -> None:
        self.window = window
        self._buckets: collections.deque[list[float]] = collections.deque()

    def add(self, tokens: int = 1) -> None:
        second = math.floor(time.monotonic())
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += tokens
        else:
            self._buckets.append([second, tokens])
            while self._buckets and self._buckets[0][0] <= second - self.window:
                self._buckets.popleft()

    def per_second(self) -> float:
        now = math.floor(time.monotonic())
        recent = sum(count for second, count in self._buckets if second > now - self.window)
        return recent / self.window


class _Child:
    """One model: its llama-server, the client to it, its requests and counters."""

    def __init__(
        self, config: LlamaCppModelConfig, binary: Path, socket: Path, max_waiting: int
    ) -> None:
        self.config = config
        self.process = LlamaServerProcess(ServerOptions(binary, config, socket))
        # Between two bytes of a reply: a request may wait in the queue for the requests
        # ahead of it to end, each at most request_seconds.
        waits = 1 + math.ceil(max_waiting / config.parallel)
        self.client = _Upstream(
            OpenAIEngineConfig(
                name=f"llama-server:{config.name}",
                base_url="http://llama-server/v1",
                models=[ModelConfig(name=config.upstream_name)],
                connect_timeout=5.0,
                read_timeout=config.request_seconds * waits + 30.0,
            ),
            socket,
        )
        self.max_waiting = max_waiting
        self.in_flight = 0
        self.throughput = _Throughput()
        self.prompt_tokens = 0
        self.cached_prompt_tokens = 0  # of those, reused from llama-server's prompt cache
        self.caps = params.TemplateCaps()

    async def start(self) -> None:
        await self.client.start()
        await self.process.start()
        self.caps = await self._template_caps()

    async def _template_caps(self) -> params.TemplateCaps:
        """What the model's chat template renders (tools or not), from the child's /props;
        unknown (an older llama-server): no tools."""
        try:
            reply = await self.client._root_get("props")
            props = orjson.loads(reply.content) if reply.is_success else None
        except (HearthError, orjson.JSONDecodeError):
            props = None
        caps = params.TemplateCaps.from_props(props)
        verb = "renders" if caps.tools else "has no"
        log.info("model %s: its chat template %s tools", self.config.name, verb)
        if caps.vision:
            log.info("model %s reads images", self.config.name)
        return caps

    async def close(self) -> None:
        await self.process.stop()
        await self.client.close()

    def load(self) -> EngineLoad:
        slots = self.config.parallel
        return EngineLoad(
            running=min(self.in_flight, slots),
            waiting=max(0, self.in_flight - slots),
            capacity=slots,
        )


class LlamaServerEngine(Engine):
    kind = "llamacpp"

    def __init__(self, config: LlamaCppEngineConfig, binary: Path) -> None:
        super().__init__(config.name)
        self.binary = binary
        self.max_waiting = (
            config.max_waiting if config.max_waiting is not None else _DEFAULT_MAX_WAITING
        )
        self._models = {m.upstream_name: m for m in expand_models(config.models)}
        self._children: dict[str, _Child] = {}
        self._lock = asyncio.Lock()
        self._run_dir: Path | None = None

    def models(self) -> list[LlamaCppModelConfig]:
        return list(self._models.values())

    async def start(self) -> None:
        # A private folder (mode 0700) for the sockets: only this user can connect, and
        # the path stays short (a Unix socket's path has at most 107 bytes).
        self._run_dir = Path(tempfile.mkdtemp(prefix="hearth-llama-"))
        # The first model now, so "ready" means "can answer"; others on first use.
        await self._child(next(iter(self._models)))

    async def close(self) -> None:
        for child in self._children.values():
            await child.close()
        self._children.clear()
        if self._run_dir is not None:
            shutil.rmtree(self._run_dir, ignore_errors=True)
            self._run_dir = None

    async def list_models(self) -> list[str]:
        return list(self._models)

    def takes_images(self, model: str) -> bool | None:
        """What the model's llama-server reports (/props `modalities.vision`); a model
        not started yet: no (Hearth starts llama-server without a multimodal projector)."""
        child = self._children.get(model)
        return child.caps.vision if child is not None else False

    async def health(self) -> bool:
        return any(child.process.ready for child in self._children.values())

    async def _child(self, name: str) -> _Child:
        child = self._children.get(name)
        if child is not None:
            return child
        if name not in self._models:
            raise ModelNotFound(name)
        async with self._lock:
            if name not in self._children:
                assert self._run_dir is not None, "start() first"
                socket = self._run_dir / f"{len(self._children)}.sock"
                child = _Child(self._models[name], self.binary, socket, self.max_waiting)
                try:
                    await child.start()
                except BaseException:
                    await child.close()
                    raise
                self._children[name] = child
        return self._children[name]

    @property
    def active_generations(self) -> int:
        """Requests in flight (generating or waiting), all models."""
        return sum(child.in_flight for child in self._children.values())

    def load_of(self, name: str) -> EngineLoad:
        """Requests generating and waiting for the model `name` (upstream), and its slots."""
        child = self._children.get(name)
        if child is None:
            config = self._models.get(name)
            return EngineLoad(running=0, waiting=0, capacity=config.parallel if config else 1)
        return child.load()

    def stats_of(self, name: str) -> tuple[float, int, int]:
        """Tokens generated per second (last 10 s), prompt tokens, and how many of those
        came from the prompt cache, for the model `name` (upstream)."""
        child = self._children.get(name)
        if child is None:
            return 0.0, 0, 0
        return child.throughput.per_second(), child.prompt_tokens, child.cached_prompt_tokens

    async def load(self) -> EngineLoad:
        loads = [child.load() for child in self._children.values()]
        return EngineLoad(
            running=sum(load.running or 0 for load in loads),
            waiting=sum(load.waiting or 0 for load in loads),
            capacity=sum(load.capacity or 0 for load in loads) or None,
        )

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        chunks = [chunk async for chunk in self.chat_stream(request, with_usage=True)]
        return assemble(chunks, request.model)

    async def chat_stream(  # type: ignore[override]
        self, request: ChatCompletionRequest, *, with_usage: bool | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        child = await self._child(request.model)
        upstream = _upstream_request(request, child.config, child.caps)
        # logprobs without top_logprobs: llama-server sends alternatives all the same.
        extra = upstream.model_extra or {}
        alone = bool(extra.get("logprobs")) and not extra.get("top_logprobs")
        include_usage = request.include_usage if with_usage is None else with_usage
        if child.in_flight >= child.config.parallel + self.max_waiting:
            raise EngineBusy(
                f"model '{request.model}' has {child.in_flight} requests running or waiting; "
                "try again shortly"
            )
        child.in_flight += 1
        chunks = child.client.chat_stream(upstream)
        usage: Usage | None = None
        last: ChatCompletionChunk | None = None
        role: ChatCompletionChunk | None = None
        first = True
        try:
            try:
                async for chunk in chunks:
                    last = chunk
                    if chunk.usage is not None:
                        usage = chunk.usage
                        _count_cache(child, chunk, usage)
                    if not chunk.choices:
                        continue
                    chunk = chunk.model_copy(update={"model": request.model, "usage": None})
                    if alone:
                        params.drop_alternatives(chunk)
                    if first and _role_only(chunk):
                        # llama-server sends the role at once, even while the request
                        # waits for a slot: held back until the first token, as the
                        # in-process engine does, so that the first chunk means "generating".
                        role, first = chunk, False
                        continue
                    first = False
                    if role is not None:
                        yield role
                        role = None
                    if chunk.choices[0].delta.content:
                        child.throughput.add()
                    yield chunk
            except ContextLengthExceeded as exc:
                if exc.param is not None:
                    raise
                raise ContextLengthExceeded(exc.message, param="messages") from exc
            if include_usage and usage is not None and last is not None:
                yield ChatCompletionChunk(
                    id=last.id, created=last.created, model=request.model, choices=[], usage=usage
                )
        finally:
            child.in_flight -= 1
            # Closing the upstream stream drops its connection: llama-server frees the slot.
            with contextlib.suppress(Exception):
                await chunks.aclose()  # type: ignore[attr-defined]

    async def complete(self, request: CompletionRequest) -> Completion:
        chunks = [c async for c in self.complete_stream(request, with_usage=True)]
        return completions.assemble(chunks, request.model)

    async def complete_stream(  # type: ignore[override]
        self, request: CompletionRequest, *, with_usage: bool | None = None
    ) -> AsyncIterator[Completion]:
        child = await self._child(request.model)
        include_usage = request.include_usage if with_usage is None else with_usage
        stream = completions.stream(child, request, self.max_waiting, include_usage=include_usage)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            await stream.aclose()  # type: ignore[attr-defined]


def _role_only(chunk: ChatCompletionChunk) -> bool:
    choice = chunk.choices[0]
    return (
        choice.finish_reason is None
        and not choice.delta.content
        and not choice.delta.model_extra
        and choice.delta.role is not None
    )


def _count_cache(child: _Child, chunk: ChatCompletionChunk, usage: Usage) -> None:
    """llama-server's `timings.cache_n`: prompt tokens it took from its cache."""
    child.prompt_tokens += usage.prompt_tokens
    timings = (chunk.model_extra or {}).get("timings")
    if isinstance(timings, dict) and isinstance(timings.get("cache_n"), int):
        child.cached_prompt_tokens += timings["cache_n"]


def _upstream_request(
    request: ChatCompletionRequest,
    config: LlamaCppModelConfig,
    caps: params.TemplateCaps = params.NO_TOOLS,
) -> ChatCompletionRequest:
    """What llama-server is asked: the sampling parameters, and the fields beyond the
    common ones that it honours (_llama_server_params.py); any other is a 400 naming it."""
    extra = params.passed_on(request, config, caps)
    _check_token_limit(request, config)
    return ChatCompletionRequest(
        messages=[
            ChatMessage(**message)
            for message in _messages(request, tools=caps.tools, images=caps.vision)
        ],
        max_tokens=request.token_limit or config.max_tokens,
        **sampling(request, config),
        **extra,
    )
