"""The response cache, with the openai SDK against two replicas sharing Redis: opt-in per
request or per key, only for deterministic (temperature 0) non-streaming requests, scoped to
the key's owner, shared by replicas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
import redis

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import api_key, create_user
from tests._server import Running, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def replicas(upstream, postgres, tmp_path_factory) -> Iterator[tuple[Running, Running]]:  # type: ignore[no-untyped-def]
    redis.Redis().flushdb()
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("cache"),
        redis_url="redis://127.0.0.1:6379/0",
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                models=[ModelConfig(name="m", upstream="ok")],
            )
        ],
    )
    with running(create_app(settings)) as one, running(create_app(settings)) as two:
        yield one, two


def ask(server: Running, key: str, **options: object):  # type: ignore[no-untyped-def]
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0)
    question = f"what is {options.pop('topic', 'x')}?"
    return client.chat.completions.with_raw_response.create(
        model="m", messages=[{"role": "user", "content": question}], **options
    )


def calls(upstream: FakeOpenAIUpstream) -> int:
    return sum(r.path.endswith("/chat/completions") for r in upstream.requests)


def test_a_request_opts_in_and_the_other_replica_answers_from_the_cache(
    replicas: tuple[Running, Running], upstream: FakeOpenAIUpstream
) -> None:
    one, two = replicas
    key = api_key(one, create_user(one))
    topic = uuid.uuid4().hex
    use = {"extra_headers": {"x-hearth-cache": "use"}, "temperature": 0, "topic": topic}
    before = calls(upstream)
    first = ask(one, key, **use)
    assert first.headers["x-hearth-cache"] == "miss"
    second = ask(two, key, **use)
    assert second.headers["x-hearth-cache"] == "hit"
    assert calls(upstream) == before + 1
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    # Without the header, or not at temperature 0, or streaming: the engine answers.
    assert "x-hearth-cache" not in ask(one, key, temperature=0, topic=topic).headers
    assert ask(one, key, **{**use, "temperature": 0.7}).headers["x-hearth-cache"] == "miss"
    client = openai.OpenAI(base_url=f"{one.url}/v1", api_key=key, max_retries=0)
    list(
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": f"what is {topic}?"}],
            temperature=0,
            stream=True,
            extra_headers={"x-hearth-cache": "use"},
        )
    )
    assert calls(upstream) == before + 4


def test_a_key_opts_in_and_entries_are_per_owner(
    replicas: tuple[Running, Running], upstream: FakeOpenAIUpstream
) -> None:
    one, _ = replicas
    caching = api_key(one, create_user(one), cache_responses=True)
    other_owner = api_key(one, create_user(one), cache_responses=True)
    topic = uuid.uuid4().hex
    assert ask(one, caching, temperature=0, topic=topic).headers["x-hearth-cache"] == "miss"
    assert ask(one, caching, temperature=0, topic=topic).headers["x-hearth-cache"] == "hit"
    # Someone else asking the same thing does not get (or learn about) the first one's entry.
    assert ask(one, other_owner, temperature=0, topic=topic).headers["x-hearth-cache"] == "miss"
    refused = ask(one, caching, temperature=0, topic=topic, extra_headers={"x-hearth-cache": "no"})
    assert "x-hearth-cache" not in refused.headers


def test_hits_are_counted_under_the_cache_deployment(
    replicas: tuple[Running, Running], upstream: FakeOpenAIUpstream
) -> None:
    one, _ = replicas
    key = api_key(one, create_user(one), cache_responses=True)
    topic = uuid.uuid4().hex
    ask(one, key, temperature=0, topic=topic)
    ask(one, key, temperature=0, topic=topic)
    metrics = httpx.get(f"{one.url}/metrics")
    assert 'hearth_response_cache_lookups_total{model="m",result="hit"}' in metrics.text
    assert 'deployment="cache"' in metrics.text
