"""A document as its readers open it from a citation: its stored file (with the content
type it was uploaded with), and its passages in order, for a page that shows the cited one
highlighted. Readable by whoever may read its collection (checked in the same SQL as the
rest of the documents service)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from sqlalchemy import select

from hearth.accounts.principal import Principal
from hearth.rag.models import DocumentChunk
from hearth.rag.schemas import DocumentPublic
from hearth.rag.service import Documents, _document

# Shown in the browser; anything else is a download, never rendered (an uploaded HTML or
# SVG file would otherwise run its scripts on Hearth's origin).
INLINE_TYPES = frozenset({"application/pdf", "text/plain"})
MAX_PASSAGES = 5000  # a page of one document's passages


@dataclass(frozen=True)
class StoredDocumentFile:
    data: bytes
    content_type: str
    filename: str

    @property
    def inline(self) -> bool:
        return self.content_type in INLINE_TYPES


@dataclass(frozen=True)
class Passage:
    id: int
    ordinal: int
    text: str
    page: int | None
    headings: list[str]


async def document_file(
    documents: Documents, principal: Principal, document_id: uuid.UUID
) -> StoredDocumentFile:
    async with documents.database.session() as session:
        document = await _document(session, principal, document_id, "read")
    data = await asyncio.to_thread(documents.files.get, document.file_sha256)
    kind = (document.content_type or "application/octet-stream").split(";")[0].strip().lower()
    return StoredDocumentFile(data, kind, document.filename)


async def document_passages(
    documents: Documents, principal: Principal, document_id: uuid.UUID
) -> tuple[DocumentPublic, list[Passage]]:
    async with documents.database.session() as session:
        document = await _document(session, principal, document_id, "read")
        rows = await session.execute(
            select(DocumentChunk.id, DocumentChunk.ordinal, DocumentChunk.text, DocumentChunk.meta)
            .where(DocumentChunk.document_id == document_id)
            .order_by(DocumentChunk.ordinal)
            .limit(MAX_PASSAGES)
        )
        passages = [
            Passage(id, ordinal, text, (meta or {}).get("page"), (meta or {}).get("headings") or [])
            for id, ordinal, text, meta in rows
        ]
        return DocumentPublic.model_validate(document), passages
