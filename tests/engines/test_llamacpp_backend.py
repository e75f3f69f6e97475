"""Which backend a `llamacpp` engine gets: llama-server when its binary is found, else the
in-process engine with one warning, or an error naming the binary when it was asked for."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from hearth.config import LlamaCppEngineConfig, Settings
from hearth.engines.llama_server import llamacpp_engine
from hearth.engines.llamacpp import LlamaCppEngine
from hearth.engines.protocol import ChatCompletionRequest
from hearth.errors import ConfigError, InvalidRequest

MISSING = Path("/nonexistent/llama-server")


def test_without_the_binary_auto_falls_back_in_process_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="hearth.engines.llama_server"):
        engine = llamacpp_engine(LlamaCppEngineConfig(llama_server=MISSING))
    assert isinstance(engine, LlamaCppEngine)
    [record] = [r for r in caplog.records if r.name == "hearth.engines.llama_server"]
    assert str(MISSING) in record.getMessage() and "one request at a time" in record.getMessage()


def test_asked_for_and_missing_is_an_error_naming_the_binary() -> None:
    config = LlamaCppEngineConfig(backend="llama-server", llama_server=MISSING)
    with pytest.raises(ConfigError, match=str(MISSING)):
        llamacpp_engine(config)


def test_in_process_when_asked() -> None:
    engine = llamacpp_engine(LlamaCppEngineConfig(backend="in-process"))
    assert isinstance(engine, LlamaCppEngine)


def test_the_queue_bound_defaults_to_engine_max_waiting(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, engine_max_waiting=3)
    [llama] = [e for e in settings.engines if isinstance(e, LlamaCppEngineConfig)]
    assert llama.max_waiting == 3
    own = LlamaCppEngineConfig(max_waiting=0)
    assert Settings(data_dir=tmp_path, engines=[own]).engines[0].max_waiting == 0


def test_in_process_refuses_what_only_llama_server_honours() -> None:
    engine = LlamaCppEngine(LlamaCppEngineConfig(backend="in-process"))
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}],
         "response_format": {"type": "json_object"}, "logprobs": False}
    )  # fmt: skip

    async def first_chunk() -> None:
        async for _ in engine.chat_stream(request):
            break

    with pytest.raises(InvalidRequest) as refused:
        asyncio.run(first_chunk())
    assert refused.value.param == "response_format"
    assert "llama-server backend honours response_format" in refused.value.message
