"""Hearth in front of OpenAI-compatible upstreams (the fake in tests/fakes stands in for a
GPU engine): pass-through, streaming chunk by chunk, and upstream failures mapped to
OpenAI-shaped 502/503/504 through the real HTTP stack."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._server import free_port, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

NAMES = ["ok", "stream", "slow", "bad-json", "error-500", "error-503", "early-close"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=5, chunk_delay=0.2, slow_delay=3) as fake:
        yield fake


@pytest.fixture(scope="module")
def gateway_url(upstream: FakeOpenAIUpstream, postgres, tmp_path_factory) -> Iterator[str]:
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("remote"),
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                api_key="sk-upstream-secret",
                read_timeout=1.0,
                models=[ModelConfig(name=f"remote-{n}", upstream=n) for n in NAMES]
                + [ModelConfig(name="remote-embed", upstream="fake-embed", type="embedding")],
            ),
            OpenAIEngineConfig(
                name="down",
                base_url=f"http://127.0.0.1:{free_port()}/v1",
                connect_timeout=0.5,
                models=[ModelConfig(name="nowhere")],
            ),
        ],
    )
    with running(create_app(settings)) as server:
        yield server.url


@pytest.fixture
def client(gateway_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0)


def test_chat_passes_through_with_public_name(
    client: openai.OpenAI, upstream: FakeOpenAIUpstream
) -> None:
    reply = client.chat.completions.create(
        model="remote-ok", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    assert reply.model == "remote-ok"
    assert reply.choices[0].message.content
    sent = upstream.last("/v1/chat/completions")
    assert sent.json["model"] == "ok" and sent.json["temperature"] == 0.5
    assert sent.headers["authorization"] == "Bearer sk-upstream-secret"


def test_stream_is_relayed_chunk_by_chunk(gateway_url: str, upstream: FakeOpenAIUpstream) -> None:
    body = {
        "model": "remote-stream",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    arrived: list[float] = []
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {") and '"content":"' in line:
                arrived.append(time.monotonic())
    assert len(arrived) == 5
    # 200 ms apart upstream, so never batched: each gap survives the trip through Hearth.
    gaps = [b - a for a, b in itertools.pairwise(arrived)]
    assert min(gaps) > 0.12, gaps


def test_embeddings_pass_through(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="remote-embed", input=["a", "b"])
    assert [d.index for d in result.data] == [0, 1]


FAILURES = [
    ("remote-error-503", 503, "engine_unavailable"),
    ("remote-error-500", 502, "bad_upstream_response"),
    ("remote-bad-json", 502, "bad_upstream_response"),
    ("remote-slow", 504, "upstream_timeout"),
    ("nowhere", 503, "engine_unavailable"),
]


@pytest.mark.parametrize("model, status, code", FAILURES)
def test_upstream_failures_map_to_statuses(
    gateway_url: str, model: str, status: int, code: str
) -> None:
    resp = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        timeout=10,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code
    assert "sk-upstream-secret" not in resp.text


@pytest.mark.parametrize("model, status, code", FAILURES[:2] + FAILURES[4:])
def test_failures_before_the_first_chunk_keep_their_status(
    gateway_url: str, model: str, status: int, code: str
) -> None:
    resp = httpx.post(
        f"{gateway_url}/v1/chat/completions",
        timeout=10,
        json={"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "model, code",
    [("remote-early-close", "bad_upstream_response"), ("remote-slow", "upstream_timeout")],
)
def test_stream_broken_after_start_reports_in_band(gateway_url: str, model: str, code: str) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    with httpx.stream("POST", f"{gateway_url}/v1/chat/completions", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        lines = [line for line in resp.iter_lines() if line]
    assert lines[0].startswith('data: {"id"')
    assert f'"code":"{code}"' in lines[-1] and "data: [DONE]" not in lines


def test_readiness_names_the_engine_that_is_down(gateway_url: str) -> None:
    ready = httpx.get(f"{gateway_url}/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["engine:gpu"] == "ok" and checks["database"] == "ok"
    assert checks["engine:down"].startswith("unavailable")


def test_an_engine_that_comes_up_late_serves_its_models_without_a_restart(
    postgres, tmp_path
) -> None:
    port = free_port()
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path,
        health_check_interval=0.2,
        engines=[
            OpenAIEngineConfig(
                name="late", base_url=f"http://127.0.0.1:{port}/v1", connect_timeout=0.5
            )
        ],
    )
    with running(create_app(settings)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == []  # nothing discovered yet
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="fake-chat", messages=[{"role": "user", "content": "hi"}]
            )
        with FakeOpenAIUpstream(port=port):
            deadline = time.monotonic() + 10
            while "fake-chat" not in {m.id for m in client.models.list()}:
                assert time.monotonic() < deadline, "the late engine's models never appeared"
                time.sleep(0.1)
            reply = client.chat.completions.create(
                model="fake-chat", messages=[{"role": "user", "content": "hi"}]
            )
    assert reply.model == "fake-chat" and reply.choices[0].message.content
