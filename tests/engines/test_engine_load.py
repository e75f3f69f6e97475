"""What engines report about their load (`Engine.load()`), read from fake servers speaking
vLLM's /metrics, llama.cpp's /slots and /metrics, and Ollama's /api/ps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hearth.config import ModelConfig, OllamaEngineConfig, OpenAIEngineConfig
from hearth.engines.base import EngineLoad
from hearth.engines.ollama import OllamaEngine
from hearth.engines.openai import OpenAIEngine, _metrics_load
from tests._server import free_port
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture
def fake() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as server:
        yield server


def openai_load(base_url: str) -> list[EngineLoad | None]:
    """Two probes in a row: the second goes straight to what answered the first."""

    async def main() -> list[EngineLoad | None]:
        engine = OpenAIEngine(
            OpenAIEngineConfig(
                name="fake", base_url=base_url, models=[ModelConfig(name="m")], connect_timeout=1
            )
        )
        await engine.start()
        try:
            return [await engine.load(), await engine.load()]
        finally:
            await engine.close()

    return asyncio.run(main())


def test_vllm_metrics(fake: FakeOpenAIUpstream) -> None:
    fake.report, fake.running, fake.waiting, fake.kv_cache = "vllm", 3, 7, 0.5
    first, second = openai_load(fake.base_url)
    assert first == second == EngineLoad(running=3, waiting=7, kv_cache_usage=0.5)
    probes = [r.path for r in fake.requests]
    assert probes == ["/metrics", "/metrics"]


def test_llamacpp_slots(fake: FakeOpenAIUpstream) -> None:
    fake.report, fake.running = "slots", 2
    first, second = openai_load(fake.base_url)
    assert first == second == EngineLoad(running=2, capacity=4)
    assert [r.path for r in fake.requests] == ["/metrics", "/slots", "/slots"]


def test_a_server_without_load_reports_none(fake: FakeOpenAIUpstream) -> None:
    assert openai_load(fake.base_url) == [None, None]


def test_an_unreachable_server_reports_none() -> None:
    assert openai_load(f"http://127.0.0.1:{free_port()}/v1") == [None, None]


def test_llamacpp_metrics_and_several_models() -> None:
    text = (
        "# TYPE llamacpp:requests_processing gauge\n"
        "llamacpp:requests_processing 2\n"
        "# TYPE llamacpp:requests_deferred gauge\n"
        "llamacpp:requests_deferred 1\n"
    )
    assert _metrics_load(text) == EngineLoad(running=2, waiting=1)
    vllm = (
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="a"} 1.0\n'
        'vllm:num_requests_running{model_name="b"} 2.0\n'
        "# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="a"} 0.2\n'
        'vllm:gpu_cache_usage_perc{model_name="b"} 0.9\n'
    )
    assert _metrics_load(vllm) == EngineLoad(running=3, kv_cache_usage=0.9)
    assert _metrics_load("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds 1\n") is None


def test_ollama_reports_loaded_models() -> None:
    async def main(url: str) -> EngineLoad | None:
        engine = OllamaEngine(OllamaEngineConfig(name="o", base_url=url, models=[]))
        await engine.start()
        try:
            return await engine.load()
        finally:
            await engine.close()

    with FakeOllama() as server:
        server.loaded = ["llama3.2:latest", "qwen2.5:7b"]
        load = asyncio.run(main(server.base_url))
    assert load is not None and load.loaded_models == {
        "llama3.2:latest",
        "llama3.2",
        "qwen2.5:7b",
    }
