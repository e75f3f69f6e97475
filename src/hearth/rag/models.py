"""Tables the documents feature owns: collections, who may read them, stored files,
documents and their chunks (text, vector, full-text index)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import HALFVEC, Vector
from sqlalchemy import (
    BigInteger,
    Computed,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    cast,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from hearth.db.base import Base

# The vector column is created at the embedder's native size; changing embedder means a
# migration and a re-index (Hearth checks this at start-up).
EMBEDDING_DIMENSIONS = 384
TEXT_SEARCH_CONFIG = "english"
# A chunk's full-text vector: its document's title (label A), its section headings (B, less
# a first heading that repeats the title, as a Markdown `# Title` does) and its text (D).
CHUNK_TSV = (
    f"setweight(to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, "
    "coalesce(metadata ->> 'title', '')), 'A') || "
    f"setweight(to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, CASE "
    "WHEN (metadata #>> '{headings,0}') = (metadata ->> 'title') "
    "THEN (metadata -> 'headings') - 0 "
    "ELSE coalesce(metadata -> 'headings', '[]'::jsonb) END), 'B') || "
    f"to_tsvector('{TEXT_SEARCH_CONFIG}'::regconfig, text)"
)


class Collection(Base):
    __tablename__ = "collection"
    __table_args__ = (UniqueConstraint("owner_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # Until accounts land, an opaque user id; the accounts feature will own the users.
    owner_id: Mapped[str] = mapped_column(String(200), index=True)
    embedding_model: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # A small number for the collection in `chunk_term`'s postings (4 bytes, not a uuid's 16).
    number: Mapped[int] = mapped_column(Integer, Identity(), unique=True)


class CollectionGrant(Base):
    """Who besides the owner may read (or write) a collection: a user id or `group:<id>`."""

    __tablename__ = "collection_grant"

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True
    )
    principal: Mapped[str] = mapped_column(String(200), primary_key=True, index=True)
    permission: Mapped[str] = mapped_column(String(10), default="read")


class StoredFile(Base):
    """Uploaded bytes, stored once under their SHA-256 in the data directory."""

    __tablename__ = "stored_file"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Document(Base):
    __tablename__ = "document"
    __table_args__ = (UniqueConstraint("collection_id", "file_sha256"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID, primary_key=True, default=uuid.uuid4)
    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), index=True
    )
    file_sha256: Mapped[str] = mapped_column(ForeignKey("stored_file.sha256"), index=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_type: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    pages: Mapped[int | None] = mapped_column(Integer)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    embedded_chunks: Mapped[int] = mapped_column(Integer, default=0)  # progress while processing
    embedded_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class DocumentChunk(Base):
    __tablename__ = "document_chunk"
    __table_args__ = (Index("ix_document_chunk_tsv", "tsv", postgresql_using="gin"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    collection_id: Mapped[uuid.UUID] = mapped_column(UUID, index=True)
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("document.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    # Stored in the row (STORAGE MAIN, toast_tuple_target 4080: migration 0007), not in
    # TOAST as pgvector's default would: every distance computed on a row reads it.
    embedding: Mapped[Any] = mapped_column(Vector(EMBEDDING_DIMENSIONS))
    # page, headings, start/end character offsets in the document's text, and the
    # document's title (for the full-text index below)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict)
    # Title (A), headings (B) and text (D): the postings weigh a word by its label
    # (migration 0014, where this expression is made).
    tsv: Mapped[Any] = mapped_column(TSVECTOR, Computed(CHUNK_TSV, persisted=True))


# HNSW (cosine) over the chunks' vectors in half precision (migration 0010); search.py
# re-sorts the walk's candidates by their full-precision distance.
Index(
    "ix_document_chunk_embedding_half",
    cast(DocumentChunk.embedding, HALFVEC(EMBEDDING_DIMENSIONS)).label("embedding_half"),
    postgresql_using="hnsw",
    postgresql_ops={"embedding_half": "halfvec_cosine_ops"},
    # A longer candidate list while building than pgvector's default 64: better-connected
    # graph, fewer candidates needed at search time (migration 0011).
    postgresql_with={"m": 16, "ef_construction": 128},
)


class CollectionLexeme(Base):
    """How many of a collection's chunks contain each lexeme: the document frequencies
    behind the full-text side's IDF (search.py). The row with the empty lexeme counts
    all of the collection's chunks, and the one with ' ' sums their lengths (for BM25's
    average). Kept by triggers on `document_chunk` (migrations 0008, 0009), so that every
    way chunks come and go (ingestion, re-indexing, deletion, the copy of a twin's chunks,
    bulk loads) keeps it right."""

    __tablename__ = "collection_lexeme"
    # Keyed by lexeme first, with the count in the index: a search reads each query word's
    # rows for all the searched collections from one range of the index, without visiting
    # the table (0.28 ms for 4 lexemes over 100 collections, where (collection, lexeme)
    # took 1.8 ms). A collection's deletion then scans the table for its rows; rare.
    __table_args__ = (
        PrimaryKeyConstraint("lexeme", "collection_id", postgresql_include=["chunks"]),
    )

    lexeme: Mapped[str] = mapped_column(Text)
    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE")
    )
    chunks: Mapped[int] = mapped_column(BigInteger)


class ChunkTerm(Base):
    """A chunk's lexeme, with what BM25 needs: the lexeme's occurrences in the chunk (`tf`)
    and the chunk's length (all its lexemes' occurrences). The full-text side's postings,
    read index-only for the query's lexemes in the permitted collections (search.py). Kept
    by triggers on `document_chunk` (migration 0009), like `collection_lexeme`."""

    __tablename__ = "chunk_term"
    __table_args__ = (
        PrimaryKeyConstraint(
            "lexeme", "collection", "chunk_id", postgresql_include=["tf", "length"]
        ),
    )

    chunk_id: Mapped[int] = mapped_column(BigInteger)
    collection: Mapped[int] = mapped_column(Integer)  # the collection's `number`
    tf: Mapped[int] = mapped_column(SmallInteger)
    length: Mapped[int] = mapped_column(SmallInteger)
    lexeme: Mapped[str] = mapped_column(Text(collation="C"))
