"""Chunk vectors stored in the row, not in TOAST.

pgvector gives `vector` EXTERNAL storage, so a 384-d vector (1,544 bytes) in a row over
PostgreSQL's 2 kB threshold went to the TOAST table: every distance the search computes
on a row (the final sort of the HNSW candidates, an exact scan of a small collection)
then fetched it through the TOAST index, about ten times slower (bench/RESULTS.md).

MAIN keeps the vector in the row unless the row cannot fit a page at all. A target of
4080 bytes (two rows a page) keeps a typical chunk's text and tsvector in the row too,
uncompressed, so full-text ranking does not decompress them; longer ones still go to TOAST.

Existing rows move only when the table is rewritten. Up to `REWRITE_LIMIT` chunks that is
done here (CLUSTER, which also rebuilds the indexes: about as long as building them took);
above, it is left to an administrator (`VACUUM FULL document_chunk`, same cost, the table
locked meanwhile), since a start-up blocked for many minutes would be worse.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

REWRITE_LIMIT = 200_000
TOAST_TUPLE_TARGET = 4080
log = logging.getLogger(__name__)


def upgrade() -> None:
    op.execute("ALTER TABLE document_chunk ALTER COLUMN embedding SET STORAGE MAIN")
    op.execute(f"ALTER TABLE document_chunk SET (toast_tuple_target = {TOAST_TUPLE_TARGET})")
    bind = op.get_bind()
    chunks = bind.execute(sa.text("SELECT count(*) FROM document_chunk")).scalar_one()
    if not chunks:
        return
    if chunks > REWRITE_LIMIT:
        log.warning(
            "%d chunks keep their vectors in TOAST until `VACUUM FULL document_chunk` "
            "rewrites the table (it locks the table, and rebuilds its indexes)",
            chunks,
        )
        return
    # The HNSW rebuild is several times faster with its graph in memory.
    op.execute("SET LOCAL maintenance_work_mem = '1GB'")
    primary_key = bind.execute(
        sa.text(
            "SELECT conname FROM pg_constraint "
            "WHERE conrelid = 'document_chunk'::regclass AND contype = 'p'"
        )
    ).scalar_one()
    op.execute(f"CLUSTER document_chunk USING {primary_key}")
    op.execute("ALTER TABLE document_chunk SET WITHOUT CLUSTER")
    op.execute("ANALYZE document_chunk")


def downgrade() -> None:
    op.execute("ALTER TABLE document_chunk RESET (toast_tuple_target)")
    op.execute("ALTER TABLE document_chunk ALTER COLUMN embedding SET STORAGE EXTERNAL")
