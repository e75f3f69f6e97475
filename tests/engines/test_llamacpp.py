"""The in-process llama.cpp engine: model resolution, bad files, usage counts."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from hearth.config import LlamaCppEngineConfig, LlamaCppModelConfig
from hearth.engines.llamacpp import LlamaCppEngine, _generate, bundled_model_path, expand_models
from hearth.engines.protocol import ChatCompletionRequest, ChatMessage
from hearth.errors import ConfigError, HearthError, InvalidRequest, ModelNotFound


def test_folder_of_ggufs_becomes_one_model_per_file(tmp_path: Path) -> None:
    (tmp_path / "tiny-a.gguf").symlink_to(bundled_model_path())
    (tmp_path / "tiny-b.gguf").symlink_to(bundled_model_path())
    (tmp_path / "notes.txt").write_text("not a model")
    models = expand_models([LlamaCppModelConfig(name="folder", path=tmp_path, n_ctx=512)])
    assert [(m.name, m.n_ctx) for m in models] == [("tiny-a", 512), ("tiny-b", 512)]


def test_empty_folder_and_missing_file_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds no"):
        expand_models([LlamaCppModelConfig(name="x", path=tmp_path)])
    with pytest.raises(ConfigError, match="does not exist"):
        expand_models([LlamaCppModelConfig(name="x", path=tmp_path / "none.gguf")])


def test_corrupt_gguf_fails_start_with_a_readable_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    engine = LlamaCppEngine(LlamaCppEngineConfig(models=[LlamaCppModelConfig(name="b", path=bad)]))
    with pytest.raises(ConfigError, match="cannot load GGUF model"):
        asyncio.run(engine.start())


def test_usage_counts_match_llama_cpp(tmp_path: Path) -> None:
    """Streaming usage (counted by us) equals what llama.cpp reports for the same request."""
    engine = LlamaCppEngine(LlamaCppEngineConfig(models=[LlamaCppModelConfig(name="m")]))

    async def run() -> tuple[object, object, dict]:
        await engine.start()
        try:
            request = ChatCompletionRequest(
                model="m",
                messages=[ChatMessage(role="user", content="Name three colours.")],
                max_tokens=40,
                temperature=0,
                seed=3,
            )
            ours = await engine.chat(request)
            with pytest.raises(ModelNotFound):
                await engine.chat(request.model_copy(update={"model": "other"}))
            llama = engine._loaded["m"].llama
            llama.reset()
            reference = await asyncio.to_thread(
                llama.create_chat_completion,
                messages=[{"role": "user", "content": "Name three colours."}],
                max_tokens=40,
                temperature=0,
                seed=3,
            )
            return ours, reference["usage"], reference["choices"][0]
        finally:
            await engine.close()

    ours, reference, choice = asyncio.run(run())
    assert ours.choices[0].message.content == choice["message"]["content"]
    assert ours.usage.prompt_tokens == reference["prompt_tokens"]
    assert ours.usage.completion_tokens == reference["completion_tokens"]


class _FailingLlama:
    """Stands in for a Llama whose decode fails mid-request: llama.cpp's "no KV slot" (the
    audit saw it once, under load) cannot be provoked on demand with the real model."""

    n_tokens = 0

    def __init__(self, error: Exception) -> None:
        self.error = error

    def create_chat_completion(self, **_: object) -> None:
        raise self.error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RuntimeError("llama_decode returned 1"), 503),
        (RuntimeError("llama_decode returned -3"), 502),
    ],
)
def test_a_failing_decode_is_503_or_502_never_a_500(error: Exception, status: int) -> None:
    emitted: list[object] = []
    _generate(_FailingLlama(error), [], {}, threading.Event(), {}, emitted.append)
    failure = emitted[0]
    assert isinstance(failure, HearthError) and failure.status == status
    assert "llama_decode" not in failure.message  # the client gets a sentence, the log the rest
    if status == 503:
        assert failure.retry_after is not None


def test_a_model_caps_max_tokens_and_the_time_one_request_may_generate() -> None:
    """A ceiling refuses a request asking more and caps one asking nothing; the deadline
    ends a long answer early, as "length", with the model free for the next request."""
    capped = LlamaCppModelConfig(name="capped", max_tokens=8)
    hurried = LlamaCppModelConfig(name="hurried", request_seconds=0.05)
    engine = LlamaCppEngine(LlamaCppEngineConfig(models=[capped, hurried]))
    story = [ChatMessage(role="user", content="Write a very long story about the sea.")]

    async def run() -> tuple[object, object, object]:
        await engine.start()
        try:
            with pytest.raises(InvalidRequest, match="at most 8 tokens") as refused:
                await engine.chat(
                    ChatCompletionRequest(model="capped", messages=story, max_tokens=9)
                )
            assert refused.value.param == "max_tokens"
            unasked = await engine.chat(ChatCompletionRequest(model="capped", messages=story))
            cut = await engine.chat(
                ChatCompletionRequest(model="hurried", messages=story, max_tokens=400)
            )
            after = await engine.chat(
                ChatCompletionRequest(model="hurried", messages=story, max_tokens=2)
            )
            return unasked, cut, after
        finally:
            await engine.close()

    unasked, cut, after = asyncio.run(run())
    assert unasked.usage.completion_tokens <= 8
    assert unasked.choices[0].finish_reason == "length"
    assert cut.choices[0].finish_reason == "length"
    assert 0 < cut.usage.completion_tokens < 400
    assert after.usage.completion_tokens <= 2
