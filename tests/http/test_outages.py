"""PostgreSQL or Redis going away: every surface answers 503 with Retry-After in its own
error shape (never a 500, never a hang), the log says so once per outage, /readyz says
which store is down, and service comes back without a restart. Real servers of the test's
own (an embedded PostgreSQL, a redis-server on another port), stopped and started here."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.db.embedded import EmbeddedPostgres
from hearth.server import create_app
from tests._accounts import api_key, create_user
from tests._server import free_port, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream() as fake:
        yield fake


def _engines(upstream: FakeOpenAIUpstream) -> list[OpenAIEngineConfig]:
    return [
        OpenAIEngineConfig(
            name="gpu", base_url=upstream.base_url, models=[ModelConfig(name="fake-chat")]
        )
    ]


def _until(check, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Wait for `check` to pass: a deadline in time, not in attempts, since each attempt
    is a request whose length a loaded machine stretches."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.1)


def _outage_logs(caplog: pytest.LogCaptureFixture, dependency: str) -> int:
    return sum(
        1
        for r in caplog.records
        if r.levelno == logging.ERROR and r.getMessage().startswith(f"{dependency} unavailable")
    )


def test_database_outage(
    tmp_path: Path, upstream: FakeOpenAIUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    embedded = EmbeddedPostgres(tmp_path / "pg")
    url = asyncio.run(embedded.start())
    settings = Settings(database_url=url, data_dir=tmp_path / "data", engines=_engines(upstream))
    try:
        with running(create_app(settings)) as hearth:
            key = {"authorization": f"Bearer {api_key(hearth, create_user(hearth))}"}
            assert httpx.get(f"{hearth.url}/api/chats", headers=key).status_code == 200
            asyncio.run(embedded.stop())
            time.sleep(1.1)  # past the key cache: the key is looked up again
            caplog.clear()
            answers = [
                httpx.get(f"{hearth.url}{path}", headers=key, timeout=30)
                for path in ("/api/chats", "/v1/models", "/api/tags", "/api/chats")
            ]
            assert [a.status_code for a in answers] == [503] * 4
            for answer in answers:
                assert int(answer.headers["retry-after"]) >= 1
            assert answers[0].json()["error"]["code"] == "service_unavailable"
            assert answers[1].json()["error"]["type"] == "server_error"  # OpenAI's shape
            assert answers[2].json() == {"error": "The database is unavailable; try again shortly."}
            assert _outage_logs(caplog, "database") == 1  # once per outage, not per request
            ready = httpx.get(f"{hearth.url}/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("unavailable")

            asyncio.run(embedded.start())  # back, same address: no restart of Hearth
            _until(lambda: httpx.get(f"{hearth.url}/api/chats", headers=key).status_code == 200)
    finally:
        asyncio.run(embedded.stop())


class RedisServer:
    """A redis-server of the test's own, on another port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
        )
        _until(
            lambda: (
                subprocess.run(
                    ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True
                ).stdout.strip()
                == "PONG"
            )
        )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen one cannot stop otherwise
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


BODY = {"model": "fake-chat", "messages": [{"role": "user", "content": "hi"}]}


def _with_redis(postgres, tmp_path: Path, redis: RedisServer, upstream, **extra) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path,
        redis_url=f"redis://127.0.0.1:{redis.port}/0",
        engines=_engines(upstream),
        **extra,
    )


def test_redis_outage(postgres, tmp_path: Path, upstream: FakeOpenAIUpstream) -> None:
    redis = RedisServer(free_port())
    redis.start()
    settings = _with_redis(postgres, tmp_path, redis, upstream)
    try:
        with running(create_app(settings)) as hearth:
            limited = api_key(hearth, create_user(hearth), requests_per_minute=1000)
            key = {"authorization": f"Bearer {limited}"}
            chat = f"{hearth.url}/v1/chat/completions"
            assert httpx.post(chat, headers=key, json=BODY).status_code == 200
            ready = httpx.get(f"{hearth.url}/readyz?only=database").json()
            assert ready["checks"] == {"database": "ok", "redis": "ok"}

            redis.stop()
            refused = httpx.post(chat, headers=key, json=BODY, timeout=30)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["message"] == "Redis is unavailable; try again shortly."
            ready = httpx.get(f"{hearth.url}/readyz?only=database")
            assert ready.status_code == 503
            assert ready.json()["checks"]["redis"].startswith("unavailable")

            redis.start()
            _until(lambda: httpx.post(chat, headers=key, json=BODY).status_code == 200)
            assert httpx.get(f"{hearth.url}/readyz?only=database").status_code == 200
    finally:
        redis.stop()


@pytest.mark.parametrize("on_failure", ["closed", "open"])
def test_a_frozen_redis_fails_fast(
    postgres, tmp_path: Path, upstream: FakeOpenAIUpstream, on_failure: str
) -> None:
    redis = RedisServer(free_port())
    redis.start()
    settings = _with_redis(
        postgres, tmp_path, redis, upstream, redis_timeout=0.3, limits_on_redis_failure=on_failure
    )
    try:
        with running(create_app(settings)) as hearth:
            key = {
                "authorization": f"Bearer {api_key(hearth, create_user(hearth), max_concurrent=4)}"
            }
            chat = f"{hearth.url}/v1/chat/completions"
            assert httpx.post(chat, headers=key, json=BODY).status_code == 200
            redis.freeze()  # SIGSTOP: connections stay open, nothing answers
            started = time.monotonic()
            answers = [httpx.post(chat, headers=key, json=BODY, timeout=30) for _ in range(3)]
            took = (time.monotonic() - started) / len(answers)
            if on_failure == "closed":
                assert [a.status_code for a in answers] == [503] * 3
                assert all(int(a.headers["retry-after"]) >= 1 for a in answers)
            else:
                assert [a.status_code for a in answers] == [200] * 3
            # Redis stays frozen until thawed below: each answer above came while it was, so
            # none waited for it (httpx's 30 s timeout would have failed the test). The time
            # is recorded, not asserted (a loaded machine stretches it).
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / f"frozen-redis-{on_failure}.txt").write_text(f"{took * 1000:.0f} ms\n")
            redis.thaw()
            _until(lambda: httpx.post(chat, headers=key, json=BODY).status_code == 200)
    finally:
        redis.stop()
