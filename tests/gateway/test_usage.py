"""Usage rows: one per /v1 request, complete and correct after a burst, written off the
request path; kept while PostgreSQL is away and written when it is back; bounded."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from hearth.config import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL
from hearth.db.session import Database
from hearth.gateway.usage import Usage, UsageRecorder
from hearth.observability.metrics import Metrics
from tests._server import Running, free_port


def rows_since(hearth: Running, since: datetime) -> list:
    async def fetch() -> list:
        async with hearth.app.state.database.session() as session:
            return list(
                (
                    await session.execute(
                        text(
                            "SELECT model, deployment, endpoint, status, prompt_tokens,"
                            " completion_tokens, latency_ms, ttft_ms FROM usage_record"
                            " WHERE created_at >= :t ORDER BY id"
                        ),
                        {"t": since},
                    )
                ).all()
            )

    return hearth.call(fetch())


def test_a_burst_leaves_one_complete_row_per_request(hearth: Running) -> None:
    since = datetime.now(UTC)
    url = hearth.url
    replies = []
    with httpx.Client(timeout=60) as client:
        for i in range(6):
            replies.append(
                client.post(
                    f"{url}/v1/chat/completions",
                    json={
                        "model": DEFAULT_CHAT_MODEL,
                        "max_tokens": 4,
                        "stream": i % 2 == 1,
                        "stream_options": {"include_usage": True},
                        "messages": [{"role": "user", "content": f"count to {i}"}],
                    },
                )
            )
        embed = client.post(
            f"{url}/v1/embeddings", json={"model": DEFAULT_EMBEDDING_MODEL, "input": ["a", "b"]}
        )
        too_long = client.post(
            f"{url}/v1/chat/completions",
            json={
                "model": DEFAULT_CHAT_MODEL,
                "max_tokens": 4,
                "messages": [{"role": "user", "content": "word " * 3000}],
            },
        )
    assert all(r.status_code == 200 for r in replies) and too_long.status_code == 400

    deadline = time.monotonic() + 10
    while len(rows := rows_since(hearth, since)) < 8:
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    chats = [r for r in rows if r.endpoint == "chat" and r.status == 200]
    assert len(chats) == 6
    expected = [r.json()["usage"] for r in replies if not r.text.startswith("data:")]
    for row, usage in zip([c for i, c in enumerate(chats) if i % 2 == 0], expected, strict=True):
        assert (row.prompt_tokens, row.completion_tokens) == (
            usage["prompt_tokens"],
            usage["completion_tokens"],
        )
    assert all(
        r.deployment == "local"
        and r.latency_ms > 0
        and r.ttft_ms is not None
        and r.completion_tokens > 0
        for r in chats
    )
    [embedding] = [r for r in rows if r.endpoint == "embeddings"]
    assert (
        embedding.status == 200
        and embedding.prompt_tokens == embed.json()["usage"]["prompt_tokens"]
    )
    assert any(r.status == 400 for r in rows)


def test_rows_wait_while_the_database_is_away(database_url: str) -> None:
    metrics = Metrics()
    recorder = UsageRecorder(metrics, capacity=5)
    usage = Usage(
        model="m",
        deployment="d",
        endpoint="chat",
        status=200,
        prompt_tokens=3,
        completion_tokens=4,
        latency_ms=12.5,
    )

    async def run() -> tuple[int, int, int]:
        away = Database(f"postgresql://nobody@127.0.0.1:{free_port()}/none", pool_size=1)
        recorder._database = away  # what start() sets, without the background task
        for _ in range(7):
            recorder.record(usage)  # two over capacity: dropped and counted
        kept = await recorder.flush()
        await away.close()
        back = Database(database_url, pool_size=1)
        recorder._database = back
        written = await recorder.flush()
        async with back.session() as session:
            count = (await session.execute(text("SELECT count(*) FROM usage_record"))).scalar()
        await back.close()
        return kept, written, count

    kept, written, count = asyncio.run(run())
    assert (kept, written, count) == (0, 5, 5)
    assert metrics.usage_dropped._value.get() == 2
