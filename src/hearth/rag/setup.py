"""Build the documents feature for one process: file store, embedder, job queue, service."""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack

from hearth.config import Settings
from hearth.db.session import Database
from hearth.errors import ConfigError, EngineUnavailable, InvalidRequest
from hearth.gateway.service import Gateway
from hearth.jobs.queue import JobQueue
from hearth.rag.embedding import Embedder
from hearth.rag.files import FileStore
from hearth.rag.ingest import Ingestor
from hearth.rag.models import EMBEDDING_DIMENSIONS
from hearth.rag.parsers import ParseLimits
from hearth.rag.service import Documents

log = logging.getLogger(__name__)


async def open_documents(
    settings: Settings,
    database: Database,
    gateway: Gateway,
    stack: AsyncExitStack,
) -> tuple[Documents, JobQueue]:
    """The documents service and its job queue, open (no worker started: the caller
    starts one once every feature has registered its jobs)."""
    embedder = Embedder(gateway, settings.rag_embedding_model)
    await check_embedder(embedder)
    files = FileStore(settings.data_dir / "files")
    ingestor = Ingestor(
        database,
        files,
        embedder,
        chunk_tokens=settings.rag_chunk_tokens,
        chunk_overlap=settings.rag_chunk_overlap,
        parse_limits=ParseLimits(
            max_text_chars=settings.rag_max_text_chars,
            max_pdf_pages=settings.rag_max_pdf_pages,
            max_elements=settings.rag_max_elements,
            memory_mb=settings.rag_parse_memory_mb,
            seconds=settings.rag_parse_seconds,
        ),
    )
    queue = JobQueue(
        database.url,
        lambda doc, last: ingestor.ingest(doc, last_attempt=last),
        stalled_after=settings.job_stalled_seconds,
    )
    await queue.open()
    stack.push_async_callback(queue.close)
    documents = Documents(
        database,
        files,
        embedder,
        queue.enqueue_ingest,
        max_file_bytes=settings.rag_max_file_bytes,
        search_candidates=settings.rag_search_candidates,
    )
    queue.add_sweep(documents.requeue_orphans)
    return documents, queue


async def check_embedder(embedder: Embedder) -> None:
    """The chunk index is built at one dimension; a different embedder needs a re-index.
    With no embedding model at all (a gateway-only deployment) documents are unavailable."""
    try:
        embedder.check_served()
    except EngineUnavailable as exc:
        log.warning("documents are unavailable: %s", exc.message)
        return
    except InvalidRequest as exc:
        raise ConfigError(f"HEARTH_RAG_EMBEDDING_MODEL: {exc.message}") from exc
    try:
        vector = await embedder.embed_query("dimension check")
    except Exception as exc:
        raise ConfigError(f"the retrieval embedder '{embedder.model}' cannot embed: {exc}") from exc
    if len(vector) != EMBEDDING_DIMENSIONS:
        raise ConfigError(
            f"the retrieval embedder '{embedder.model}' gives {len(vector)} dimensions but the "
            f"chunk index holds {EMBEDDING_DIMENSIONS}: changing the embedder needs a new "
            "index and a re-index of every document"
        )
