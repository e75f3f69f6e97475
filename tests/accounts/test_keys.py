"""API keys on /v1, with the openai SDK: required, checked, limited, revoked on every
replica within a second. Two Hearth replicas share one PostgreSQL and one Redis; the
engine behind them is the fake OpenAI-compatible upstream."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
import redis

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import admin_headers
from tests._server import running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

HELLO = [{"role": "user", "content": "hi"}]
AUTH: dict[str, str] = {}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(chunk_count=4, chunk_delay=0.3) as fake:
        yield fake


@pytest.fixture(scope="module")
def replicas(upstream, postgres, tmp_path_factory) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Two replicas: one database, one Redis (a fresh key prefix per run via db index 0)."""
    redis.Redis().flushdb()
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("keys"),
        require_api_key=True,
        redis_url="redis://127.0.0.1:6379/0",
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                models=[
                    ModelConfig(name="chat-a", upstream="ok"),
                    ModelConfig(name="chat-b", upstream="ok"),
                    ModelConfig(name="slow-stream", upstream="stream"),
                ],
            )
        ],
    )
    with running(create_app(settings)) as one, running(create_app(settings)) as two:
        # The REST API needs a signed-in caller: an admin's key, valid on both replicas.
        AUTH.update(admin_headers(one))
        yield one.url, two.url


def new_key(url: str, **options: object) -> dict:
    resp = httpx.post(
        f"{url}/api/keys", json={"name": f"k-{uuid.uuid4().hex[:6]}", **options}, headers=AUTH
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def sdk(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


def test_requests_without_a_valid_key_are_401(replicas: tuple[str, str]) -> None:
    url = replicas[0]
    bare = httpx.post(f"{url}/v1/chat/completions", json={"model": "chat-a", "messages": HELLO})
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    for key in ("sk-not-ours", "hk-deadbeef-wrongsecret", "hk-", "hk--x"):
        with pytest.raises(openai.AuthenticationError):
            sdk(url, key).chat.completions.create(model="chat-a", messages=HELLO)
    with pytest.raises(openai.AuthenticationError):
        sdk(url, "nope").models.list()


def test_key_works_and_is_stored_hashed(replicas: tuple[str, str]) -> None:
    url = replicas[0]
    created = new_key(url)
    assert created["key"].startswith(created["prefix"] + "-")
    reply = sdk(url, created["key"]).chat.completions.create(model="chat-a", messages=HELLO)
    assert reply.choices[0].message.content
    listed = httpx.get(f"{url}/api/keys", headers=AUTH).json()
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "key" not in mine and created["key"] not in str(listed)


def test_allowed_models(replicas: tuple[str, str]) -> None:
    url = replicas[0]
    key = new_key(url, models=["chat-a"])["key"]
    with sdk(url, key) as client:
        assert [m.id for m in client.models.list()] == ["chat-a"]
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.chat.completions.create(model="chat-b", messages=HELLO)
        assert info.value.body["code"] == "model_not_allowed"
        assert client.models.retrieve("chat-a").id == "chat-a"
        # A model the key may not use is, to it, a model that does not exist (as OpenAI's).
        with pytest.raises(openai.NotFoundError) as hidden:
            client.models.retrieve("chat-b")
        assert hidden.value.body["code"] == "model_not_found"


def test_requests_per_minute_across_two_replicas(replicas: tuple[str, str]) -> None:
    """The limit is shared through Redis: 3 per minute in total, not 3 per replica."""
    key = new_key(replicas[0], requests_per_minute=3)["key"]
    admitted, refused = 0, []
    for i in range(8):
        try:
            sdk(replicas[i % 2], key).chat.completions.create(model="chat-a", messages=HELLO)
            admitted += 1
        except openai.RateLimitError as exc:
            refused.append(exc.response)
    assert admitted == 3 and len(refused) == 5
    assert int(refused[0].headers["retry-after"]) >= 1
    assert int(refused[0].headers["retry-after-ms"]) > 0
    assert refused[0].json()["error"]["type"] == "rate_limit_error"


def test_team_limit_is_shared_by_the_teams_keys_on_both_replicas(
    replicas: tuple[str, str],
) -> None:
    """Two keys of one team, each unlimited, used on both replicas: 4 a minute in total."""
    url = replicas[0]
    group = httpx.post(
        f"{url}/api/admin/groups", json={"name": f"team-{uuid.uuid4().hex[:6]}"}, headers=AUTH
    ).json()
    limited = httpx.put(
        f"{url}/api/admin/groups/{group['id']}/limits",
        json={"requests_per_minute": 4},
        headers=AUTH,
    )
    assert limited.status_code == 200 and limited.json()["requests_per_minute"] == 4
    keys = [new_key(url, team_id=group["id"])["key"] for _ in range(2)]
    admitted = 0
    for i in range(10):
        try:
            sdk(replicas[i % 2], keys[i // 2 % 2]).chat.completions.create(
                model="chat-a", messages=HELLO
            )
            admitted += 1
        except openai.RateLimitError as exc:
            assert "team" in exc.response.json()["error"]["message"]
    assert admitted == 4
    other = new_key(url)["key"]  # a key outside the team is not affected
    assert sdk(url, other).chat.completions.create(model="chat-a", messages=HELLO).choices
    bad = httpx.put(
        f"{url}/api/admin/groups/{group['id']}/limits", json={"budget": 5}, headers=AUTH
    )
    assert bad.status_code == 400


def test_concurrency_limit_holds_while_a_stream_runs(replicas: tuple[str, str]) -> None:
    url = replicas[0]
    key = new_key(url, max_concurrent=1)["key"]
    client = sdk(url, key)
    stream = client.chat.completions.create(model="slow-stream", messages=HELLO, stream=True)
    next(iter(stream))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="chat-a", messages=HELLO)
    list(stream)  # the stream ends: its slot is released
    assert client.chat.completions.create(model="chat-a", messages=HELLO).choices


def test_revoked_key_is_refused_on_the_other_replica_within_a_second(
    replicas: tuple[str, str],
) -> None:
    one, two = replicas
    created = new_key(one)
    sdk(two, created["key"]).chat.completions.create(model="chat-a", messages=HELLO)  # cached
    assert httpx.delete(f"{one}/api/keys/{created['prefix']}", headers=AUTH).status_code == 204
    time.sleep(1.05)
    with pytest.raises(openai.AuthenticationError):
        sdk(two, created["key"]).chat.completions.create(model="chat-a", messages=HELLO)
    assert httpx.delete(f"{one}/api/keys/{created['prefix']}", headers=AUTH).status_code == 404


def test_expired_key_is_refused(replicas: tuple[str, str]) -> None:
    url = replicas[0]
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    key = new_key(url, expires_at=past)["key"]
    with pytest.raises(openai.AuthenticationError):
        sdk(url, key).chat.completions.create(model="chat-a", messages=HELLO)


def test_bad_key_requests_are_400(replicas: tuple[str, str]) -> None:
    url = replicas[0]
    for body in ({"name": ""}, {"name": "x", "requests_per_minute": 0}, {"name": "x", "budget": 5}):
        assert httpx.post(f"{url}/api/keys", json=body, headers=AUTH).status_code == 400, body


def test_keys_cli(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "HEARTH_DATABASE_URL": database_url,
        "HEARTH_DATA_DIR": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }

    def hearth(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hearth", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    created = hearth("create", "ci", "--model", "chat-a", "--rpm", "10")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    prefix = "-".join(key.split("-")[:2])
    assert "shown only once" in created.stderr
    listed = hearth("list")
    assert prefix in listed.stdout and "active" in listed.stdout and "rpm=10" in listed.stdout
    assert key not in listed.stdout
    assert hearth("revoke", prefix).returncode == 0
    assert "revoked" in hearth("list").stdout
    again = hearth("revoke", prefix)
    assert again.returncode == 1 and "no active key" in again.stderr
