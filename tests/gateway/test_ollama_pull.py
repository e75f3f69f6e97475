"""Ollama's /api/pull through Hearth, driven by the official `ollama` SDK: passed on, with
its progress, to the Ollama engines that serve the model; for a model of another engine,
or one Hearth is not configured with, an error in Ollama's shape that says why."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import ollama
import pytest

from hearth.config import ModelConfig, OllamaEngineConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._server import running
from tests.fakes.ollama_upstream import FakeOllama
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeOllama, FakeOllama, FakeOpenAIUpstream]]:
    with FakeOllama() as one, FakeOllama() as two, FakeOpenAIUpstream() as gpu:
        yield one, two, gpu


@pytest.fixture(scope="module")
def hearth_url(fakes, postgres, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    one, two, gpu = fakes
    models = [ModelConfig(name="llama3", upstream="llama3.2"),
              ModelConfig(name="unlisted", upstream="missing")]  # fmt: skip
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("ollama-pull"),
        health_check_interval=0,
        engines=[
            OllamaEngineConfig(name="box-1", base_url=one.base_url, models=models),
            OllamaEngineConfig(name="box-2", base_url=two.base_url, models=models[:1]),
            OpenAIEngineConfig(
                name="gpu", base_url=gpu.base_url, models=[ModelConfig(name="qwen")]
            ),
        ],
    )
    with running(create_app(settings)) as server:
        yield server.url


def _pulls(fake: FakeOllama) -> list[str]:
    return [r.json["model"] for r in fake.requests if r.path == "/api/pull"]


def test_pull_streams_each_ollama_engines_progress(hearth_url: str, fakes) -> None:  # type: ignore[no-untyped-def]
    one, two, _ = fakes
    one.reset()
    two.reset()
    with ollama.Client(host=hearth_url) as client:
        progress = list(client.pull("llama3", stream=True))
    statuses = [p.status for p in progress]
    # Both engines pulled, under their own name for the model; one "success" at the end.
    assert statuses.count("pulling manifest") == 2 and statuses[-1] == "success"
    assert statuses.count("success") == 1
    completed = [p.completed for p in progress if p.total]
    assert completed and max(completed) == progress[1].total
    assert _pulls(one) == _pulls(two) == ["llama3.2"]
    # Without streaming: the last line only.
    with ollama.Client(host=hearth_url) as client:
        assert client.pull("llama3:latest", stream=False).status == "success"


def test_a_registry_error_is_ollamas_error(hearth_url: str) -> None:
    with ollama.Client(host=hearth_url) as client:
        with pytest.raises(ollama.ResponseError) as caught:
            client.pull("unlisted", stream=False)
        assert "box-1" in caught.value.error and "file does not exist" in caught.value.error
        # Streaming: the error comes as the stream's last line, as Ollama sends it.
        with pytest.raises(ollama.ResponseError):
            list(client.pull("unlisted", stream=True))


def test_models_of_other_engines_are_configured_not_pulled(hearth_url: str) -> None:
    with ollama.Client(host=hearth_url) as client:
        with pytest.raises(ollama.ResponseError) as caught:
            client.pull("qwen")
        assert caught.value.status_code == 400
        assert 'openai engine "gpu"' in caught.value.error
        assert "configured, not pulled" in caught.value.error
        with pytest.raises(ollama.ResponseError) as caught:
            client.pull("mistral")
        assert caught.value.status_code == 404
        assert 'model "mistral" is not configured in Hearth' in caught.value.error


def test_an_unknown_field_is_refused_by_name(hearth_url: str) -> None:
    reply = httpx.post(f"{hearth_url}/api/pull", json={"model": "llama3", "username": "x"})
    assert reply.status_code == 400
    assert set(reply.json()) == {"error"} and "username" in reply.json()["error"]
