"""What llama-server is asked: the sampling fields chat and text completions share, and
text completions (/v1/completions) themselves: the prompt goes to its own `/v1/completions`
as it is (no chat template), with the same ceilings, queue bound and slot accounting as
chat."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from hearth.config import LlamaCppModelConfig
from hearth.engines.llamacpp import check_token_limit, refuse_unsupported
from hearth.engines.protocol import (
    ChatCompletionRequest,
    Completion,
    CompletionChoice,
    CompletionRequest,
    StreamOptions,
)
from hearth.errors import EngineBusy, InvalidRequest

if TYPE_CHECKING:
    from hearth.engines.llama_server import _Child

# Beyond the common fields: `logprobs` is declared (an integer); nothing else is passed on.
HONOURED: frozenset[str] = frozenset()


def sampling(
    request: ChatCompletionRequest | CompletionRequest, config: LlamaCppModelConfig
) -> dict[str, Any]:
    """The fields of an upstream request that chat and completions share: streamed with
    usage, the sampling parameters, and the time limit."""
    fields: dict[str, Any] = {
        "model": config.upstream_name,
        "stream": True,
        "stream_options": StreamOptions(include_usage=True),
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop,
        "seed": request.seed,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        # The answer ends after request_seconds, with finish_reason "length".
        "t_max_predict_ms": int(config.request_seconds * 1000),
    }
    if request.seed is not None:
        # Reusing a cached prompt prefix changes the logits in their last bits, and so
        # the samples: a seeded request evaluates its whole prompt, to be reproducible.
        fields["cache_prompt"] = False
    return fields


def upstream_request(request: CompletionRequest, config: LlamaCppModelConfig) -> CompletionRequest:
    refuse_unsupported(request, HONOURED)  # type: ignore[arg-type]
    check_token_limit(request.max_tokens, config, "max_tokens")
    return CompletionRequest(
        prompt=request.text,
        max_tokens=request.max_tokens,
        logprobs=request.logprobs,
        **sampling(request, config),
    )


async def stream(
    child: _Child, request: CompletionRequest, max_waiting: int, *, include_usage: bool
) -> AsyncIterator[Completion]:
    upstream = upstream_request(request, child.config)
    if child.in_flight >= child.config.parallel + max_waiting:
        raise EngineBusy(
            f"model '{request.model}' has {child.in_flight} requests running or waiting; "
            "try again shortly"
        )
    child.in_flight += 1
    chunks = child.client.complete_stream(upstream)
    usage, last = None, None
    try:
        async for chunk in chunks:
            last = chunk
            if chunk.usage is not None:
                usage = chunk.usage
            if not chunk.choices:
                continue
            if chunk.choices[0].text:
                child.throughput.add()
            yield chunk.model_copy(update={"model": request.model, "usage": None})
        if include_usage and usage is not None and last is not None:
            yield Completion(
                id=last.id, created=last.created, model=request.model, choices=[], usage=usage
            )
    finally:
        child.in_flight -= 1
        with contextlib.suppress(Exception):  # dropping the connection frees the slot
            await chunks.aclose()  # type: ignore[attr-defined]


def assemble(chunks: list[Completion], model: str) -> Completion:
    """One completion from a whole stream (the usage in its last chunk)."""
    if not chunks:
        raise InvalidRequest(f"model '{model}' returned nothing")
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    finish = next(
        (c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason),
        None,
    )
    logprobs = _joined_logprobs(chunks)
    return Completion(
        id=chunks[0].id,
        created=chunks[0].created,
        model=model,
        choices=[CompletionChoice(text=text, finish_reason=finish, logprobs=logprobs)],
        usage=chunks[-1].usage,
    )


def _joined_logprobs(chunks: list[Completion]) -> dict[str, list[object]] | None:
    """OpenAI's completion logprobs (parallel lists) joined across the stream's chunks."""
    joined: dict[str, list[object]] = {}
    for chunk in chunks:
        part = chunk.choices[0].logprobs if chunk.choices else None
        for key, values in (part or {}).items():
            if isinstance(values, list):
                joined.setdefault(key, []).extend(values)
    return joined or None
