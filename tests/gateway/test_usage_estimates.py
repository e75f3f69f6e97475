"""A stream's usage is recorded when it starts, as an estimate its real row replaces when
it ends: a replica killed mid-stream (a real `hearth serve`, SIGKILL) leaves the estimate
in the table; one that finishes leaves exactly its real row."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text

from hearth.db.session import Database
from hearth.gateway.usage import Usage, UsageRecorder
from hearth.observability.metrics import Metrics
from tests._server import free_port
from tests.fakes.openai_upstream import FakeOpenAIUpstream

ROWS = text(
    "SELECT call_id, estimated, status, prompt_tokens, completion_tokens FROM usage_record"
    " ORDER BY id"
)


def _usage(call_id: uuid.UUID, *, estimated: bool, completion: int = 0) -> Usage:
    return Usage(
        model="m",
        deployment="d",
        endpoint="chat",
        status=0 if estimated else 200,
        prompt_tokens=10,
        completion_tokens=completion,
        latency_ms=0.0 if estimated else 50.0,
        call_id=call_id,
        estimated=estimated,
    )


def test_the_real_row_replaces_the_estimate_in_the_buffer_or_the_table(
    database_url: str,
) -> None:
    async def scenario() -> list[tuple[object, ...]]:
        database = Database(database_url, pool_size=1)
        recorder = UsageRecorder(Metrics())
        recorder.start(database, retention_days=30)
        try:
            quick, slow = uuid.uuid4(), uuid.uuid4()
            # A stream that ends within one flush: its estimate never reaches the table.
            recorder.record(_usage(quick, estimated=True))
            recorder.record(_usage(quick, estimated=False, completion=5))
            # A long one: the estimate is written first, then replaced.
            recorder.record(_usage(slow, estimated=True))
            assert await recorder.flush() == 2
            async with database.session() as session:
                during = (await session.execute(ROWS)).all()
            assert [(r.call_id, r.estimated) for r in during] == [(quick, False), (slow, True)]
            recorder.record(_usage(slow, estimated=False, completion=7))
            await recorder.flush()
            async with database.session() as session:
                return list((await session.execute(ROWS)).all())
        finally:
            await recorder.close()
            await database.close()

    rows = asyncio.run(scenario())
    assert [(r.estimated, r.status, r.completion_tokens) for r in rows] == [
        (False, 200, 5),
        (False, 200, 7),
    ]


def test_a_replica_killed_mid_stream_leaves_an_estimated_row(
    database_url: str, tmp_path: Path
) -> None:
    with FakeOpenAIUpstream(chunk_count=400, chunk_delay=0.1) as upstream:
        port = free_port()
        engines = [
            {
                "kind": "openai",
                "name": "fake",
                "base_url": upstream.base_url,
                "models": [{"name": "stream"}],
            }
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
        env |= {
            "HEARTH_DATABASE_URL": database_url,
            "HEARTH_DATA_DIR": str(tmp_path),
            "HEARTH_ENGINES": json.dumps(engines),
            "HEARTH_LOG_LEVEL": "warning",
        }
        replica = subprocess.Popen(
            [sys.executable, "-m", "hearth", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        database = Database(database_url, pool_size=1)
        loop = asyncio.new_event_loop()

        def rows() -> list[tuple[object, ...]]:
            async def fetch() -> list[tuple[object, ...]]:
                async with database.session() as session:
                    return list((await session.execute(ROWS)).all())

            return loop.run_until_complete(fetch())

        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert replica.poll() is None, "hearth serve exited"
                assert time.monotonic() < deadline, "hearth serve did not start"
                time.sleep(0.2)
            body = {
                "model": "stream",
                "stream": True,
                "messages": [{"role": "user", "content": "tell me a long story " * 20}],
            }
            with httpx.Client(timeout=60) as client:
                with client.stream("POST", f"{url}/v1/chat/completions", json=body) as stream:
                    assert stream.status_code == 200
                    lines = stream.iter_lines()
                    assert next(line for line in lines if line.startswith("data:"))
                    deadline = time.monotonic() + 30
                    while not rows():  # the estimate is flushed within a second or so
                        assert time.monotonic() < deadline, "no estimate was written"
                        time.sleep(0.2)
                    replica.send_signal(signal.SIGKILL)
                    replica.wait()
            left = rows()
        finally:
            if replica.poll() is None:
                replica.kill()
                replica.wait()
            loop.run_until_complete(database.close())
            loop.close()
    assert len(left) == 1, left
    estimate = left[0]
    assert estimate.estimated and estimate.status == 0 and estimate.call_id is not None
    assert estimate.prompt_tokens > 50  # about four characters a token of the question
