"""Documents and retrieval: collections, grants, stored files, documents, chunks with an
HNSW (cosine) index and a GIN full-text index created with the schema; and the tables of
the job queue (procrastinate) that ingests them.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR, UUID

from hearth.db.migrate import execute_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "collection",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("owner_id", sa.String(200), nullable=False, index=True),
        sa.Column("embedding_model", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.UniqueConstraint("owner_id", "name", name="uq_collection_owner_id"),
    )
    op.create_table(
        "collection_grant",
        sa.Column(
            "collection_id",
            UUID,
            sa.ForeignKey("collection.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("principal", sa.String(200), primary_key=True, index=True),
        sa.Column("permission", sa.String(10), nullable=False, server_default="read"),
    )
    op.create_table(
        "stored_file",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
    )
    op.create_table(
        "document",
        sa.Column("id", UUID, primary_key=True),
        sa.Column(
            "collection_id",
            UUID,
            sa.ForeignKey("collection.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column(
            "file_sha256",
            sa.String(64),
            sa.ForeignKey("stored_file.sha256"),
            nullable=False,
            index=True,
        ),
        sa.Column("filename", sa.String(500), nullable=False),
        sa.Column("content_type", sa.String(200)),
        sa.Column("title", sa.Text),
        sa.Column("status", sa.String(20), nullable=False, server_default="queued"),
        sa.Column("error", sa.Text),
        sa.Column("pages", sa.Integer),
        sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("embedded_chunks", sa.Integer, nullable=False, server_default="0"),
        sa.Column("embedded_tokens", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=now),
        sa.UniqueConstraint("collection_id", "file_sha256", name="uq_document_collection_id"),
    )
    op.create_table(
        "document_chunk",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("collection_id", UUID, nullable=False, index=True),
        sa.Column(
            "document_id",
            UUID,
            sa.ForeignKey("document.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("embedding", Vector(384), nullable=False),
        sa.Column("metadata", JSONB, nullable=False, server_default="{}"),
        sa.Column("tsv", TSVECTOR, sa.Computed("to_tsvector('english', text)", persisted=True)),
    )
    # Built now, on the empty table, and kept up to date by every insert: no first-use build.
    op.execute(
        "CREATE INDEX ix_document_chunk_embedding_hnsw ON document_chunk "
        "USING hnsw (embedding vector_cosine_ops)"
    )
    op.execute("CREATE INDEX ix_document_chunk_tsv ON document_chunk USING gin (tsv)")
    # The job queue's own schema, as the installed procrastinate defines it.
    execute_script(op.get_bind(), SchemaManager.get_schema())


def downgrade() -> None:
    for table in ("document_chunk", "document", "stored_file", "collection_grant", "collection"):
        op.drop_table(table)
    # procrastinate's objects are left in place: its schema has no drop script.
