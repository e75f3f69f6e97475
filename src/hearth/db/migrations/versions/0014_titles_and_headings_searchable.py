"""The full-text side indexes each chunk's document title and section headings as well as
its text, weighted: title words (label A) count 3 times in BM25's term frequency, heading
words (B) twice, body words (D) once.

Until now `document_chunk.tsv` held the chunk's body only; the title and heading path were
prefixed for the embedder and nowhere else, so a `text` search for a document's exact title
could miss it (issue 18). A chunk's row now carries its document's title in `metadata`
(`title`, written by ingestion; copied with a twin's chunks), and `tsv` is generated from
the title (A), the headings (B, without a first heading that repeats the title, as a
Markdown `# Title` does) and the text (D). The postings (`chunk_term`, 0009) count a
position by its label's weight, and a chunk's length, for BM25's normalisation, is the sum
of those weighted counts (`collection_lexeme`'s ' ' row sums them per collection), so a
long title does not make a chunk look short. The weights are fixed here, not tuned: the
title repeated three times is what a writer who wanted it found would do.

Existing chunks are re-indexed from the rows they already have: nothing is re-embedded.
Their postings and counts are rebuilt from scratch, the triggers off meanwhile.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

CONFIG = "english"

# The generated column (kept equal to models.DocumentChunk.tsv's expression).
TSV = (
    f"setweight(to_tsvector('{CONFIG}'::regconfig, coalesce(metadata ->> 'title', '')), 'A') || "
    f"setweight(to_tsvector('{CONFIG}'::regconfig, CASE "
    "WHEN (metadata #>> '{headings,0}') = (metadata ->> 'title') "
    "THEN (metadata -> 'headings') - 0 "
    "ELSE coalesce(metadata -> 'headings', '[]'::jsonb) END), 'B') || "
    f"to_tsvector('{CONFIG}'::regconfig, text)"
)

# One lexeme's weighted count in a chunk, from a row of unnest(tsv) called `t`: every
# position once, A twice more, B once more (a position's label is in `weights`).
WEIGHTED_TF = (
    "(coalesce(cardinality(t.positions), 1)"
    " + 2 * coalesce(cardinality(array_positions(t.weights, 'A')), 0)"
    " + coalesce(cardinality(array_positions(t.weights, 'B')), 0))"
)
CHUNK_LENGTH = f"(SELECT coalesce(sum({WEIGHTED_TF}), 0) FROM unnest(tsv) t)"

_DELTA = f"""
SELECT collection_id AS c, l, {{sign}}sum(n)::bigint AS d
FROM {{rows}}, LATERAL (
    SELECT l, 1 AS n FROM unnest(tsvector_to_array(tsv) || ''::text) l
    UNION ALL SELECT ' ', {CHUNK_LENGTH}) x
WHERE collection_id IN (SELECT id FROM collection)
GROUP BY 1, 2"""

POSTINGS = f"""
SELECT n.id, c.number, t.lexeme, least({WEIGHTED_TF}, 32767),
       least(sum({WEIGHTED_TF}) OVER (PARTITION BY n.id), 32767)
FROM {{rows}} n JOIN collection c ON c.id = n.collection_id, unnest(n.tsv) t"""

_INDEX = """
CREATE OR REPLACE FUNCTION index_chunk_terms() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM chunk_term;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        DELETE FROM chunk_term p
        USING old_chunks o JOIN collection c ON c.id = o.collection_id,
              unnest(tsvector_to_array(o.tsv)) l
        WHERE p.lexeme = l COLLATE "C" AND p.collection = c.number AND p.chunk_id = o.id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO chunk_term (chunk_id, collection, lexeme, tf, length)
        {postings};
    END IF;
    RETURN NULL;
END
$$"""


def _version(name: str):
    path = Path(__file__).with_name(name)
    spec = importlib.util.spec_from_file_location(f"_hearth_migration_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_0008 = _version("0008_collection_lexemes.py")
_0009 = _version("0009_chunk_terms.py")


def _reindex(tsv: str, delta: str, postings: str) -> None:
    """Regenerate `tsv` by `tsv`, and rebuild the lexeme counts and postings from it."""
    op.execute("ALTER TABLE document_chunk DISABLE TRIGGER USER")
    op.execute("DROP INDEX ix_document_chunk_tsv")
    op.execute("ALTER TABLE document_chunk DROP COLUMN tsv")
    op.execute(
        f"ALTER TABLE document_chunk ADD COLUMN tsv tsvector GENERATED ALWAYS AS ({tsv}) STORED"
    )
    op.execute("CREATE INDEX ix_document_chunk_tsv ON document_chunk USING gin (tsv)")
    op.execute("SET LOCAL work_mem = '256MB'")
    op.execute("DELETE FROM collection_lexeme")
    op.execute(
        "INSERT INTO collection_lexeme (collection_id, lexeme, chunks) "
        + delta.format(sign="", rows="document_chunk")
    )
    op.execute("ALTER TABLE chunk_term DROP CONSTRAINT pk_chunk_term")
    op.execute("TRUNCATE chunk_term")
    op.execute(
        "INSERT INTO chunk_term (chunk_id, collection, lexeme, tf, length) "
        + postings.format(rows="document_chunk")
    )
    op.execute("SET LOCAL maintenance_work_mem = '512MB'")
    op.execute(
        "ALTER TABLE chunk_term ADD CONSTRAINT pk_chunk_term "
        "PRIMARY KEY (lexeme, collection, chunk_id) INCLUDE (tf, length)"
    )
    op.execute("ALTER TABLE document_chunk ENABLE TRIGGER USER")
    op.execute("ANALYZE chunk_term")
    op.execute("ANALYZE collection_lexeme")


def upgrade() -> None:
    op.execute(_0008.count_function(_DELTA, "bigint"))
    op.execute(_INDEX.format(postings=POSTINGS.format(rows="new_chunks")))
    # Each chunk learns its document's title (the triggers are off: all is rebuilt below).
    op.execute("ALTER TABLE document_chunk DISABLE TRIGGER USER")
    op.execute(
        "UPDATE document_chunk ch "
        "SET metadata = ch.metadata || jsonb_build_object('title', d.title) "
        "FROM document d WHERE d.id = ch.document_id AND d.title IS NOT NULL"
    )
    _reindex(TSV, _DELTA, POSTINGS)


def downgrade() -> None:
    op.execute(_0009._COUNT)
    op.execute(_INDEX.format(postings=_0009.POSTINGS.format(rows="new_chunks")))
    _reindex(f"to_tsvector('{CONFIG}'::regconfig, text)", _0009._DELTA, _0009.POSTINGS)
    op.execute("ALTER TABLE document_chunk DISABLE TRIGGER USER")
    op.execute("UPDATE document_chunk SET metadata = metadata - 'title'")
    op.execute("ALTER TABLE document_chunk ENABLE TRIGGER USER")
