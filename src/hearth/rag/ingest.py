"""The ingestion job: parse → chunk → embed → store, for one document.

Idempotent, so a retry or a worker restart mid-job is safe: the document's chunks are
replaced in one transaction at the end, never appended. A file whose bytes another
collection has already indexed with the same embedder is not embedded again: its chunks
are copied in SQL.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

from sqlalchemy import delete, insert, select, text, update

from hearth.db.session import Database
from hearth.rag.chunking import chunk_blocks, embedding_input
from hearth.rag.embedding import Embedder
from hearth.rag.files import FileStore
from hearth.rag.models import Collection, Document, DocumentChunk
from hearth.rag.parsers import ParseError, ParseLimits, parse_document

log = logging.getLogger(__name__)

_PROGRESS_EVERY = 256  # chunks embedded between progress updates
_INSERT_BATCH = 1000  # chunks per INSERT: 6 parameters each (asyncpg sends at most 32,767)

_COPY_CHUNKS = text("""
INSERT INTO document_chunk (collection_id, document_id, ordinal, text, embedding, metadata)
SELECT :collection_id, :document_id, ordinal, text, embedding, metadata
FROM document_chunk WHERE document_id = :source_id
""")


class Ingestor:
    def __init__(
        self,
        database: Database,
        files: FileStore,
        embedder: Embedder,
        *,
        chunk_tokens: int,
        chunk_overlap: int,
        parse_limits: ParseLimits,
    ) -> None:
        self.database = database
        self.files = files
        self.embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.parse_limits = parse_limits

    async def ingest(self, document_id: uuid.UUID, *, last_attempt: bool = True) -> None:
        """Index one document. A file that cannot be parsed fails the document at once; other
        errors (an engine down) are raised for the queue to retry, and fail the document
        only on the last attempt."""
        async with self.database.session() as session:
            document = await session.get(Document, document_id)
            if document is None:
                log.info("document %s was deleted before ingestion", document_id)
                return
            await self._set(document_id, status="processing", error=None, embedded_chunks=0)
            filename, content_type, digest = (
                document.filename,
                document.content_type,
                document.file_sha256,
            )
            collection_id = document.collection_id
        try:
            if await self._copy_from_twin(document_id, collection_id, digest):
                return
            await self._index(document_id, collection_id, filename, content_type, digest)
        except ParseError as exc:
            log.info("document %s failed: %s", document_id, exc.reason)
            await self._set(document_id, status="failed", error=exc.reason)
        except Exception as exc:
            if last_attempt:
                await self._set(document_id, status="failed", error=f"indexing failed: {exc}")
            raise

    async def _index(
        self,
        document_id: uuid.UUID,
        collection_id: uuid.UUID,
        filename: str,
        content_type: str | None,
        digest: str,
    ) -> None:
        data = await asyncio.to_thread(self.files.get, digest)
        # In a child process under the limits: a hostile file fails alone, this one lives.
        parsed = await asyncio.to_thread(
            parse_document, data, filename, content_type, limits=self.parse_limits
        )
        chunks = await asyncio.to_thread(
            chunk_blocks, parsed.blocks, size=self.chunk_tokens, overlap=self.chunk_overlap
        )
        title = parsed.title or filename
        await self._set(document_id, pages=parsed.pages, chunks=len(chunks), title=title)
        inputs = [embedding_input(chunk, title) for chunk in chunks]
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(inputs), _PROGRESS_EVERY):
            batch, used = await self.embedder.embed(inputs[start : start + _PROGRESS_EVERY])
            vectors += batch
            tokens += used
            await self._set(document_id, embedded_chunks=len(vectors))
        rows = [
            {
                "collection_id": collection_id,
                "document_id": document_id,
                "ordinal": i,
                "text": chunk.text,
                "embedding": vector,
                "meta": {**chunk.metadata(), "title": title},
            }
            for i, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True))
        ]
        async with self.database.session() as session, session.begin():
            await session.execute(
                delete(DocumentChunk).where(DocumentChunk.document_id == document_id)
            )
            # One multi-row INSERT per batch, not executemany's statement per chunk: the
            # lexeme counts (migration 0008) are kept by a trigger per statement.
            for start in range(0, len(rows), _INSERT_BATCH):
                await session.execute(
                    insert(DocumentChunk).values(rows[start : start + _INSERT_BATCH])
                )
            await session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(status="ready", error=None, embedded_tokens=tokens)
            )
        log.info(
            "document %s ready",
            document_id,
            extra={"chunks": len(rows), "pages": parsed.pages, "tokens": tokens},
        )

    async def _copy_from_twin(
        self, document_id: uuid.UUID, collection_id: uuid.UUID, digest: str
    ) -> bool:
        """Copy the chunks of a ready document with the same bytes and embedder, if any."""
        async with self.database.session() as session, session.begin():
            twin = (
                await session.execute(
                    select(
                        Document.id,
                        Document.pages,
                        Document.chunks,
                        Document.title,
                        Document.embedded_tokens,
                    )
                    .join(Collection, Collection.id == Document.collection_id)
                    .where(
                        Document.file_sha256 == digest,
                        Document.status == "ready",
                        Document.id != document_id,
                        Collection.embedding_model == self.embedder.model,
                    )
                    .limit(1)
                )
            ).first()
            if twin is None:
                return False
            await session.execute(
                delete(DocumentChunk).where(DocumentChunk.document_id == document_id)
            )
            await session.execute(
                _COPY_CHUNKS,
                {"collection_id": collection_id, "document_id": document_id, "source_id": twin.id},
            )
            await session.execute(
                update(Document)
                .where(Document.id == document_id)
                .values(
                    status="ready",
                    error=None,
                    pages=twin.pages,
                    chunks=twin.chunks,
                    embedded_chunks=twin.chunks,
                    title=twin.title,
                    embedded_tokens=0,
                )
            )
        log.info("document %s copied from %s (same bytes)", document_id, twin.id)
        return True

    async def _set(self, document_id: uuid.UUID, **values: object) -> None:
        async with self.database.session() as session, session.begin():
            await session.execute(
                update(Document).where(Document.id == document_id).values(**values)
            )
