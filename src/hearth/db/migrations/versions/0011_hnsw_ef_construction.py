"""The HNSW graph built with a longer candidate list (ef_construction 128, not 64).

With pgvector's default of 64, the graph over clustered vectors (as sentence embeddings
are) leaves some neighbours hard to reach: at 100k chunks, recall@10 stopped at 0.986
whether the search kept 200 or 300 candidates (`hnsw.ef_search`). Built with 128, the same
data gave 0.990-0.998 at ef_search 100 (builds vary), so searches keep fewer candidates and
walk less for a better result (bench/RESULTS.md, session 9). The build takes 1.5-1.6 times
as long: the existing chunks are indexed again here, about 18 s per 100,000 and 5 minutes
per million on a 2-core machine.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_INDEX = "ix_document_chunk_embedding_half"


def _rebuild(options: str) -> None:
    op.execute("SET LOCAL maintenance_work_mem = '1GB'")  # the graph built in memory
    op.execute(f"DROP INDEX {_INDEX}")
    op.execute(
        f"CREATE INDEX {_INDEX} ON document_chunk "
        f"USING hnsw ((embedding::halfvec(384)) halfvec_cosine_ops) {options}"
    )


def upgrade() -> None:
    _rebuild("WITH (m = 16, ef_construction = 128)")


def downgrade() -> None:
    _rebuild("")
