"""Collections and documents: who may see what, uploads, deletion, re-indexing, search.

Every read is filtered by the caller inside the SQL that reads. A collection the caller may
not read is reported as not found, so ids cannot be probed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from hearth.accounts.principal import Principal
from hearth.db.session import Database
from hearth.errors import Forbidden, InvalidRequest, NotFound, RequestTooLarge
from hearth.rag.embedding import Embedder
from hearth.rag.files import FileStore, sha256
from hearth.rag.models import Collection, CollectionGrant, Document, StoredFile
from hearth.rag.parsers import is_supported
from hearth.rag.schemas import (
    Citation,
    CollectionCreate,
    CollectionPublic,
    CollectionSummary,
    DocumentPublic,
    GrantCreate,
    GrantPublic,
)
from hearth.rag.search import search_chunks

# Queues the ingestion of a document (the job queue's `defer`); injected so the service
# does not depend on how jobs run.
Enqueue = Callable[[uuid.UUID], Awaitable[None]]

log = logging.getLogger(__name__)


class Documents:
    def __init__(
        self,
        database: Database,
        files: FileStore,
        embedder: Embedder,
        enqueue: Enqueue,
        *,
        max_file_bytes: int,
        search_candidates: int,
    ) -> None:
        self.database = database
        self.files = files
        self.embedder = embedder
        self.enqueue = enqueue
        self.max_file_bytes = max_file_bytes
        self.search_candidates = search_candidates

    # -- collections -------------------------------------------------------------------

    async def create_collection(
        self, principal: Principal, body: CollectionCreate
    ) -> CollectionPublic:
        """Create a collection owned by the caller."""
        async with self.database.session() as session:
            collection = Collection(
                name=body.name,
                description=body.description,
                owner_id=principal.user_id,
                embedding_model=self.embedder.model,
            )
            session.add(collection)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise InvalidRequest(
                    f"you already have a collection named '{body.name}'", param="name"
                ) from exc
            return CollectionPublic.model_validate(collection)

    async def list_collections(self, principal: Principal) -> list[CollectionPublic]:
        """The collections the caller owns or may read, newest first."""
        async with self.database.session() as session:
            rows = await session.scalars(
                _readable(principal).order_by(Collection.created_at.desc())
            )
            return [CollectionPublic.model_validate(c) for c in rows]

    async def all_collections(self, principal: Principal) -> list[CollectionSummary]:
        """Every collection on the site, newest first, with its documents and chunks
        (administrators only: what `hearth ingest` or a departed user left is found here)."""
        if not principal.is_admin:
            raise Forbidden("only administrators list every collection")
        sizes = (
            select(
                Document.collection_id,
                func.count().label("documents"),
                func.coalesce(func.sum(Document.chunks), 0).label("chunks"),
            )
            .group_by(Document.collection_id)
            .subquery()
        )
        statement = (
            select(Collection, sizes.c.documents, sizes.c.chunks)
            .outerjoin(sizes, sizes.c.collection_id == Collection.id)
            .order_by(Collection.created_at.desc(), Collection.id)
        )
        async with self.database.session() as session:
            rows = (await session.execute(statement)).all()
        return [
            CollectionSummary(
                **CollectionPublic.model_validate(c).model_dump(),
                documents=documents or 0,
                chunks=chunks or 0,
            )
            for c, documents, chunks in rows
        ]

    async def find_collection(self, principal: Principal, name: str) -> CollectionPublic:
        async with self.database.session() as session:
            found = await session.scalar(
                _readable(principal)
                .where(Collection.name == name)
                .order_by(Collection.owner_id != principal.user_id)
            )
            if found is None:
                raise NotFound(f"no collection named '{name}'")
            return CollectionPublic.model_validate(found)

    async def get_collection(
        self, principal: Principal, collection_id: uuid.UUID
    ) -> CollectionPublic:
        async with self.database.session() as session:
            return CollectionPublic.model_validate(
                await _collection(session, principal, collection_id, "read")
            )

    async def check_readable(self, principal: Principal, collection_ids: list[uuid.UUID]) -> None:
        """NotFound for the first of `collection_ids` the caller may not read (or that does
        not exist), as for one collection: asking for it must not be silently ignored."""
        wanted = list(dict.fromkeys(collection_ids))
        async with self.database.read() as session:
            found = set(
                await session.scalars(
                    _readable(principal)
                    .with_only_columns(Collection.id)
                    .where(Collection.id.in_(wanted))
                )
            )
        for collection_id in wanted:
            if collection_id not in found:
                raise NotFound(f"collection {collection_id} not found", param="hearth.collections")

    async def erase_owner(self, user_id: str) -> None:
        """For an account being deleted: delete its collections (documents and chunks with
        them) and the grants others gave it. Stored files stay while another document
        holds the same bytes."""
        async with self.database.session() as session:
            await session.execute(delete(Collection).where(Collection.owner_id == user_id))
            await session.execute(
                delete(CollectionGrant).where(CollectionGrant.principal == user_id)
            )
            await session.commit()

    async def delete_collection(self, principal: Principal, collection_id: uuid.UUID) -> None:
        """Delete a collection with its documents and chunks (owner only)."""
        async with self.database.session() as session:
            collection = await _collection(session, principal, collection_id, "owner")
            await session.delete(collection)
            await session.commit()

    async def grant(
        self, principal: Principal, collection_id: uuid.UUID, body: GrantCreate
    ) -> None:
        """Let a user or group read (or write) a collection (owner only)."""
        async with self.database.session() as session:
            await _collection(session, principal, collection_id, "owner")
            await session.merge(
                CollectionGrant(
                    collection_id=collection_id,
                    principal=body.principal,
                    permission=body.permission,
                )
            )
            await session.commit()

    async def list_grants(
        self, principal: Principal, collection_id: uuid.UUID
    ) -> list[GrantPublic]:
        """Who the collection is shared with (owner only)."""
        async with self.database.session() as session:
            await _collection(session, principal, collection_id, "owner")
            grants = await session.scalars(
                select(CollectionGrant)
                .where(CollectionGrant.collection_id == collection_id)
                .order_by(CollectionGrant.principal)
            )
            return [GrantPublic.model_validate(g) for g in grants]

    async def revoke(self, principal: Principal, collection_id: uuid.UUID, who: str) -> None:
        """Stop sharing with `who` (owner only); NotFound if it was not shared with them."""
        async with self.database.session() as session:
            await _collection(session, principal, collection_id, "owner")
            result = await session.execute(
                delete(CollectionGrant).where(
                    CollectionGrant.collection_id == collection_id, CollectionGrant.principal == who
                )
            )
            await session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"collection {collection_id} is not shared with {who}")

    # -- documents ---------------------------------------------------------------------

    async def add_document(
        self,
        principal: Principal,
        collection_id: uuid.UUID,
        filename: str,
        data: bytes,
        content_type: str | None = None,
    ) -> tuple[DocumentPublic, bool]:
        """Store an upload and queue its ingestion. Returns the document and whether it is
        new: the same bytes in the same collection give back the existing document."""
        if len(data) > self.max_file_bytes:
            raise RequestTooLarge(f"the file exceeds the limit of {self.max_file_bytes} bytes")
        if not data:
            raise InvalidRequest("the file is empty", param="file")
        _check_upload_names(filename, content_type)
        if not is_supported(filename, content_type):
            raise InvalidRequest(f"unsupported file type: {filename}", param="file")
        digest = sha256(data)
        async with self.database.session() as session:
            await _collection(session, principal, collection_id, "write")
            existing = await session.scalar(
                select(Document).where(
                    Document.collection_id == collection_id, Document.file_sha256 == digest
                )
            )
            if existing is not None:
                return DocumentPublic.model_validate(existing), False
        await asyncio.to_thread(self.files.put, data)
        async with self.database.session() as session:
            await session.execute(
                insert(StoredFile).values(sha256=digest, size=len(data)).on_conflict_do_nothing()
            )
            document = Document(
                collection_id=collection_id,
                file_sha256=digest,
                filename=filename[:500],
                content_type=content_type,
                status="queued",
            )
            session.add(document)
            try:
                await session.commit()
            except IntegrityError:  # the same bytes were uploaded concurrently
                await session.rollback()
                existing = await session.scalar(
                    select(Document).where(
                        Document.collection_id == collection_id, Document.file_sha256 == digest
                    )
                )
                assert existing is not None
                return DocumentPublic.model_validate(existing), False
            public = DocumentPublic.model_validate(document)
        await self.enqueue(public.id)
        return public, True

    async def requeue_orphans(self, *, older_than: float = 120.0) -> int:
        """Queue again the documents left `queued` with no job: the upload was stored but
        the job could not be deferred (the queue's database connection failed just then).
        Jobs are deduplicated per document, so a document still waiting is not doubled."""
        stale = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than)
        async with self.database.session() as session:
            ids = list(
                await session.scalars(
                    select(Document.id).where(
                        Document.status == "queued", Document.updated_at < stale
                    )
                )
            )
        for document_id in ids:
            await self.enqueue(document_id)
        if ids:
            log.info("queued %d documents again that had no job", len(ids))
        return len(ids)

    async def list_documents(
        self, principal: Principal, collection_id: uuid.UUID
    ) -> list[DocumentPublic]:
        async with self.database.session() as session:
            await _collection(session, principal, collection_id, "read")
            rows = await session.scalars(
                select(Document)
                .where(Document.collection_id == collection_id)
                .order_by(Document.created_at.desc())
            )
            return [DocumentPublic.model_validate(d) for d in rows]

    async def get_document(self, principal: Principal, document_id: uuid.UUID) -> DocumentPublic:
        async with self.database.session() as session:
            return DocumentPublic.model_validate(
                await _document(session, principal, document_id, "read")
            )

    async def delete_document(self, principal: Principal, document_id: uuid.UUID) -> None:
        """Delete a document and its chunks; its file goes when no document uses it."""
        async with self.database.session() as session:
            document = await _document(session, principal, document_id, "write")
            digest = document.file_sha256
            await session.delete(document)
            await session.flush()
            in_use = await session.scalar(select(exists().where(Document.file_sha256 == digest)))
            if not in_use:
                await session.execute(delete(StoredFile).where(StoredFile.sha256 == digest))
            await session.commit()
        if not in_use:
            await asyncio.to_thread(self.files.delete, digest)

    async def reindex_document(
        self, principal: Principal, document_id: uuid.UUID
    ) -> DocumentPublic:
        """Parse, chunk and embed the document again (its chunks are replaced atomically)."""
        async with self.database.session() as session:
            document = await _document(session, principal, document_id, "write")
            await session.execute(
                update(Document)
                .where(Document.id == document.id)
                .values(status="queued", error=None)
            )
            await session.commit()
        await self.enqueue(document_id)
        return await self.get_document(principal, document_id)

    # -- search ------------------------------------------------------------------------

    async def search(
        self,
        principal: Principal,
        collections: list[uuid.UUID],
        query: str,
        *,
        k: int = 8,
        mode: Literal["hybrid", "vector", "text"] = "hybrid",
        explain: bool = False,
    ) -> list[Citation]:
        """The `k` best chunks for `query` in those of `collections` the caller may read
        (with `explain`, each result's ranks and scores on each side)."""
        vector = None if mode == "text" else await self.embedder.embed_query(query)
        async with self.database.session() as session:
            return await search_chunks(
                session,
                principal,
                collections,
                query,
                vector,
                k=k,
                mode=mode,
                candidates=self.search_candidates,
                explain=explain,
            )


def _readable(principal: Principal) -> Select[tuple[Collection]]:
    granted = select(CollectionGrant.collection_id).where(
        CollectionGrant.principal.in_(principal.principals)
    )
    return select(Collection).where(
        or_(Collection.owner_id == principal.user_id, Collection.id.in_(granted))
    )


async def _collection(
    session: AsyncSession,
    principal: Principal,
    collection_id: uuid.UUID,
    need: Literal["read", "write", "owner"],
) -> Collection:
    collection = await session.scalar(_readable(principal).where(Collection.id == collection_id))
    if collection is None:
        raise NotFound(f"collection {collection_id} not found")
    if need == "read" or collection.owner_id == principal.user_id:
        return collection
    if need == "write":
        writable = await session.scalar(
            select(
                exists().where(
                    CollectionGrant.collection_id == collection_id,
                    CollectionGrant.principal.in_(principal.principals),
                    CollectionGrant.permission == "write",
                )
            )
        )
        if writable:
            return collection
    raise Forbidden(f"you may not change collection {collection_id}")


async def _document(
    session: AsyncSession,
    principal: Principal,
    document_id: uuid.UUID,
    need: Literal["read", "write"],
) -> Document:
    document = await session.get(Document, document_id)
    if document is None:
        raise NotFound(f"document {document_id} not found")
    try:
        await _collection(session, principal, document.collection_id, need)
    except NotFound:
        raise NotFound(f"document {document_id} not found") from None
    return document


_MAX_FILENAME = 500  # document.filename
_MAX_CONTENT_TYPE = 200  # document.content_type


def _check_upload_names(filename: str, content_type: str | None) -> None:
    """What a multipart part says of its file, checked before it is stored: the text guard
    (hearth.http.text_guard) leaves multipart bodies alone, since their files are bytes."""
    if "\x00" in filename or len(filename) > _MAX_FILENAME:
        raise InvalidRequest(
            f"the file name must have at most {_MAX_FILENAME} characters and no NUL",
            param="file",
        )
    if content_type is not None and (
        "\x00" in content_type or len(content_type) > _MAX_CONTENT_TYPE
    ):
        raise InvalidRequest(
            f"the file's Content-Type must have at most {_MAX_CONTENT_TYPE} characters",
            param="file",
        )
