"""A worker killed mid-job (SIGKILL: no goodbye, no cleanup): after its heartbeat goes
stale, another `hearth worker` takes the job back and finishes it, with no duplicate chunks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from hearth.accounts.principal import Principal
from hearth.commands import services
from hearth.config import EmbedderEngineConfig, Settings
from hearth.db.session import Database
from hearth.rag.models import Document, DocumentChunk
from hearth.rag.schemas import CollectionCreate

OWNER = Principal("worker-test")


def big_markdown() -> bytes:
    """About 800 chunks: ingestion reports progress every 256 (ingest.py), so the worker
    can be caught part-way through however fast this machine embeds."""
    words = "tide harbour lantern rope anchor gull keel mast sail current".split()
    paragraphs = [
        f"## Part {i}\n\n" + " ".join(words[(i * 7 + j) % len(words)] for j in range(120))
        for i in range(800)
    ]
    return ("# Logbook\n\n" + "\n\n".join(paragraphs)).encode()


def worker(settings_env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hearth", "worker"],
        env=settings_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_workers_job_is_finished_by_another(database_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        engines=[EmbedderEngineConfig()],
        job_stalled_seconds=3,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {
        "HEARTH_DATABASE_URL": database_url,
        "HEARTH_DATA_DIR": str(tmp_path),
        "HEARTH_ENGINES": '[{"kind": "embedder"}]',
        "HEARTH_JOB_STALLED_SECONDS": "3",
        "HEARTH_LOG_LEVEL": "warning",
    }

    async def add() -> uuid.UUID:
        async with services(settings, run_worker=False) as svc:
            collection = await svc.documents.create_collection(OWNER, CollectionCreate(name="logs"))
            document, _ = await svc.documents.add_document(
                OWNER, collection.id, "log.md", big_markdown(), "text/markdown"
            )
            return document.id

    database = Database(database_url, pool_size=1)

    async def state(document_id: uuid.UUID) -> tuple[str, int, int, int]:
        async with database.session() as session:
            doc = await session.get(Document, document_id, populate_existing=True)
            rows = await session.scalar(
                select(func.count()).where(DocumentChunk.document_id == document_id)
            )
            ordinals = await session.scalar(
                select(func.count(func.distinct(DocumentChunk.ordinal))).where(
                    DocumentChunk.document_id == document_id
                )
            )
        assert doc is not None
        return doc.status, doc.embedded_chunks, rows or 0, ordinals or 0

    document_id = asyncio.run(add())
    loop = asyncio.new_event_loop()
    try:  # the pool is closed however the test ends (no connection left to the next test)
        first = worker(env)
        try:
            deadline = time.monotonic() + 120
            while True:  # wait until it is part-way through embedding
                status, embedded, _, _ = loop.run_until_complete(state(document_id))
                if status == "processing" and embedded > 0:
                    break
                assert status != "ready", "the document was too small to interrupt"
                assert time.monotonic() < deadline, "the first worker never started the job"
                time.sleep(0.05)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()

        second = worker(env)
        try:
            deadline = time.monotonic() + 180
            while (found := loop.run_until_complete(state(document_id)))[0] != "ready":
                assert found[0] != "failed", found
                assert time.monotonic() < deadline, f"the job was not taken back: {found}"
                time.sleep(0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        loop.run_until_complete(database.close())
        loop.close()
    status, embedded, rows, ordinals = found
    assert rows == ordinals == embedded > 0  # every chunk once
