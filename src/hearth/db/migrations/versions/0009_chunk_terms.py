"""BM25 postings for the full-text side: `chunk_term`, one row per (lexeme, chunk).

The full-text side used to fetch every chunk matching any query word from the table (a
GIN bitmap, then one heap page per chunk: the rows are wide, the vector is inline) and
rank each with ts_rank: ~3 µs a chunk, 3 ms for the ~1,000 matches of a query at 100k
chunks, 20+ ms for ~5,000 at 1M. `chunk_term` holds each chunk's lexemes with what BM25
needs (the lexeme's count in the chunk, the chunk's length), in one B-tree keyed by
(lexeme, collection, chunk) that includes them: a query reads its words' postings from the
index alone (an index-only scan, ~0.1 µs a posting), sums BM25 per chunk and keeps the
best. Keyed by collection second, a search over a few collections reads only their
postings; over many, it reads each word's range once.

Collections get a small number (`collection.number`), so that a posting carries 4 bytes
of collection instead of a 16-byte uuid: ~40 bytes of index and ~50 of table per posting.

Kept by statement-level triggers on `document_chunk`, like `collection_lexeme` (0008), so
every path stays right: ingestion, re-indexing, the copy of a twin's chunks, deletion,
bulk loads. A chunk's postings are found again by (lexeme, collection, chunk), so the
collection must still exist when its chunks are deleted: a collection's deletion deletes
its chunks first, in one statement (a BEFORE DELETE trigger), instead of leaving them to
the cascade. That statement also counts the collection's lexemes down, which 0008 skipped.

`collection_lexeme` also keeps, under the lexeme ' ' (a space: never a lexeme), the sum of
its chunks' lengths, for BM25's average length; its counts become bigint for that sum.

`text_weighting` (0008) goes: the IDF tiers it made for ts_rank are replaced by BM25.

Existing chunks get their postings here, the index built after the rows: well under a
minute for the 100,000 synthetic chunks of bench/search_speed.py on a shared 2-core machine
(390 MB). Until autovacuum has marked the new rows all-visible, the "index-only" scans still
visit the table (text search about half as fast as afterwards).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import importlib.util
from pathlib import Path

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# A chunk's length in BM25's sense: its lexemes' occurrences (stop words are not counted).
CHUNK_LENGTH = "(SELECT coalesce(sum(coalesce(cardinality(positions), 1)), 0) FROM unnest(tsv))"

# As in 0008, plus the chunks' lengths under ' '.
_DELTA = f"""
SELECT collection_id AS c, l, {{sign}}sum(n)::bigint AS d
FROM {{rows}}, LATERAL (
    SELECT l, 1 AS n FROM unnest(tsvector_to_array(tsv) || ''::text) l
    UNION ALL SELECT ' ', {CHUNK_LENGTH}) x
WHERE collection_id IN (SELECT id FROM collection)
GROUP BY 1, 2"""


def _version_0008():
    """Migration 0008's module: its trigger function, rebuilt here with lengths, and what
    the downgrade puts back."""
    path = Path(__file__).with_name("0008_collection_lexemes.py")
    spec = importlib.util.spec_from_file_location("_hearth_migration_0008", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_PREVIOUS = _version_0008()
_COUNT = _PREVIOUS.count_function(_DELTA, "bigint")

# The postings of the chunks in `rows` (a transition table, or the whole table).
POSTINGS = """
SELECT n.id, c.number, t.lexeme, least(coalesce(cardinality(t.positions), 1), 32767),
       least(sum(coalesce(cardinality(t.positions), 1)) OVER (PARTITION BY n.id), 32767)
FROM {rows} n JOIN collection c ON c.id = n.collection_id, unnest(n.tsv) t"""

# Deleting finds each posting by its key, one index probe each (the planner, which cannot
# know a transition table's size, would otherwise hash-join against the whole table).
_INDEX = f"""
CREATE FUNCTION index_chunk_terms() RETURNS trigger LANGUAGE plpgsql
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
        {POSTINGS.format(rows="new_chunks")};
    END IF;
    RETURN NULL;
END
$$"""

_TRIGGERS = _PREVIOUS._TRIGGERS  # the same events, with the same transition tables

_DELETE_COLLECTION = """
CREATE FUNCTION delete_collection_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM document_chunk WHERE collection_id = OLD.id;
    RETURN OLD;
END
$$"""


def upgrade() -> None:
    op.execute("ALTER TABLE collection ADD COLUMN number integer GENERATED BY DEFAULT AS IDENTITY")
    op.execute("ALTER TABLE collection ADD CONSTRAINT uq_collection_number UNIQUE (number)")
    op.execute("ALTER TABLE collection_lexeme ALTER COLUMN chunks TYPE bigint")
    op.execute(_COUNT)
    # Columns ordered for the table's row (no alignment padding). The key is added after
    # the existing chunks' postings: one sorted build instead of row-by-row insertion.
    op.execute(
        """
        CREATE TABLE chunk_term (
            chunk_id bigint NOT NULL,
            collection integer NOT NULL,
            tf smallint NOT NULL,
            length smallint NOT NULL,
            lexeme text COLLATE "C" NOT NULL
        ) WITH (autovacuum_vacuum_insert_scale_factor = 0.05)
        """
    )
    op.execute(_INDEX)
    for event, when in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER document_chunk_terms_{event} {when} "
            "FOR EACH STATEMENT EXECUTE FUNCTION index_chunk_terms()"
        )
    op.execute(_DELETE_COLLECTION)
    op.execute(
        "CREATE TRIGGER collection_delete_chunks BEFORE DELETE ON collection "
        "FOR EACH ROW EXECUTE FUNCTION delete_collection_chunks()"
    )
    op.execute("DROP FUNCTION text_weighting(text[], uuid[], float8, float8)")
    # Existing chunks: their lengths, and their postings (the index built after the rows).
    op.execute("SET LOCAL work_mem = '256MB'")
    op.execute(
        "INSERT INTO collection_lexeme (collection_id, lexeme, chunks) "
        f"SELECT collection_id, ' ', sum({CHUNK_LENGTH}) FROM document_chunk GROUP BY 1"
    )
    op.execute(
        "INSERT INTO chunk_term (chunk_id, collection, lexeme, tf, length) "
        + POSTINGS.format(rows="document_chunk")
    )
    op.execute("SET LOCAL maintenance_work_mem = '512MB'")
    op.execute(
        "ALTER TABLE chunk_term ADD CONSTRAINT pk_chunk_term "
        "PRIMARY KEY (lexeme, collection, chunk_id) INCLUDE (tf, length)"
    )
    op.execute("ANALYZE chunk_term")


def downgrade() -> None:
    op.execute(_PREVIOUS._WEIGHTING)
    op.execute("DROP TRIGGER collection_delete_chunks ON collection")
    op.execute("DROP FUNCTION delete_collection_chunks()")
    for event in _TRIGGERS:
        op.execute(f"DROP TRIGGER document_chunk_terms_{event} ON document_chunk")
    op.execute("DROP FUNCTION index_chunk_terms()")
    op.execute("DROP TABLE chunk_term")
    op.execute("DELETE FROM collection_lexeme WHERE lexeme = ' '")
    op.execute(_PREVIOUS._COUNT)
    op.execute("ALTER TABLE collection_lexeme ALTER COLUMN chunks TYPE integer")
    op.execute("ALTER TABLE collection DROP COLUMN number")
