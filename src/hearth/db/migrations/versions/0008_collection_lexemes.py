"""Per-collection document frequencies of lexemes, for the full-text side's IDF.

`collection_lexeme` counts, for each collection, the chunks containing each lexeme (and,
under the empty lexeme, all its chunks). Search sums the rows of the collections being
searched, so a user's ranking depends only on what they may read.

Statement-level triggers on `document_chunk` keep it, from the rows each statement
inserted or deleted (transition tables), so every path stays right: ingestion and
re-indexing (delete, then insert, in one transaction), the copy of a twin's chunks,
document deletion (a cascade), bulk loads. The chunks of a deleted collection are not
counted down: its rows go with it (ON DELETE CASCADE), and the cascade deletes chunks one
document per statement, which would otherwise recount the whole collection.

Two transactions writing the same collection's counts (two workers re-indexing two of its
documents) would update overlapping rows in crossed orders, once for the old chunks and
once for the new, and deadlock; a transaction-scoped advisory lock per collection, taken
in a fixed order, makes them queue instead (for the few milliseconds to commit).

`text_weighting` turns a query's lexemes into ts_rank weights (search.py says how). It is
a function so that its queries are planned once per connection: written inline in the
search statement (as CTEs with window functions) it added ~1 ms of planning to every
search, since the session forces a custom plan for each statement.

Existing chunks are counted here: 21-31 s for the 100,000 synthetic chunks of
bench/search_speed.py (48 words each, 100 collections: 850,000 rows, 102 MB with the
index), 5 s for 10,000, on a shared 2-core machine.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# (collection, lexeme, ±chunks) of the rows a statement changed, grouped; each chunk counts
# once per distinct lexeme, and once under '' (the chunk total). Only chunks of existing
# collections count (see above).
_DELTA = """
SELECT collection_id AS c, l, {sign}count(*)::int AS d
FROM {rows}, unnest(tsvector_to_array(tsv) || ''::text) l
WHERE collection_id IN (SELECT id FROM collection)
GROUP BY 1, 2"""


def count_function(delta: str, counts: str = "integer") -> str:
    """The trigger function, from the query of a statement's changes (`delta`, with format
    fields `sign` and `rows`) and the counts' SQL type. Migration 0009 redefines it so."""
    return f"""
CREATE OR REPLACE FUNCTION count_chunk_lexemes() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    lexemes text[];
    deltas {counts}[];
    lock_key integer;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM collection_lexeme;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        SELECT array_agg(c), array_agg(l), array_agg(d) INTO ids, lexemes, deltas
        FROM ({delta.format(sign="", rows="new_chunks")}) x;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(c), array_agg(l), array_agg(d) INTO ids, lexemes, deltas
        FROM ({delta.format(sign="-", rows="old_chunks")}) x;
    ELSE
        SELECT array_agg(c), array_agg(l), array_agg(d) INTO ids, lexemes, deltas
        FROM (SELECT c, l, sum(d)::{counts} AS d FROM (
                {delta.format(sign="", rows="new_chunks")}
                UNION ALL
                {delta.format(sign="-", rows="old_chunks")}) both_ GROUP BY 1, 2
              HAVING sum(d) <> 0) x;
    END IF;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    FOR lock_key IN SELECT DISTINCT hashtext(c::text) FROM unnest(ids) c ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(hashtext('collection_lexeme'), lock_key);
    END LOOP;
    INSERT INTO collection_lexeme AS s (collection_id, lexeme, chunks)
    SELECT * FROM unnest(ids, lexemes, deltas)
    ON CONFLICT (lexeme, collection_id) DO UPDATE SET chunks = s.chunks + excluded.chunks;
    -- lexemes no chunk of the collection holds any more
    DELETE FROM collection_lexeme s USING unnest(ids, lexemes, deltas) AS t(c, l, d)
    WHERE t.d < 0 AND s.lexeme = t.l AND s.collection_id = t.c AND s.chunks <= 0;
    RETURN NULL;
END
$$"""


_COUNT = count_function(_DELTA)

_TRIGGERS = {
    "insert": "AFTER INSERT ON document_chunk REFERENCING NEW TABLE AS new_chunks",
    "delete": "AFTER DELETE ON document_chunk REFERENCING OLD TABLE AS old_chunks",
    "update": "AFTER UPDATE ON document_chunk "
    "REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks",
    "truncate": "AFTER TRUNCATE ON document_chunk",
}

# Each lexeme's IDF (BM25's, to the power `power`) over `collections`; the lexemes sorted
# by it and cut into at most four tiers where it drops most (by more than `min_gap` of the
# top IDF); each tier weighs its mean IDF over the top one. Tiers from the commonest up
# are labelled D (ts_rank's default label, so nothing to relabel), C, B, A: `weights` is
# ts_rank's {D, C, B, A} array, and `c`, `b`, `a` the lexemes to relabel.
_WEIGHTING = """
CREATE FUNCTION text_weighting(
    lexemes text[], collections uuid[], power float8, min_gap float8,
    OUT weights real[], OUT c text[], OUT b text[], OUT a text[]
) LANGUAGE plpgsql STABLE SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    sorted text[];
    idf float8[];
    cuts integer[];
    tier integer := 0;
    level integer;
    sums float8[] := '{0,0,0,0}';
    counts integer[] := '{0,0,0,0}';
BEGIN
    WITH found AS (
        SELECT lexeme, sum(chunks)::float8 AS chunks FROM collection_lexeme
        WHERE lexeme = ANY(lexemes || ''::text) AND collection_id = ANY(collections)
        GROUP BY lexeme
    )
    SELECT array_agg(lexeme ORDER BY x.idf DESC, lexeme),
           array_agg(x.idf ORDER BY x.idf DESC, lexeme)
    INTO sorted, idf
    FROM (SELECT q.lexeme,
                 ln(1 + (n.total - coalesce(f.chunks, 0) + 0.5) / (coalesce(f.chunks, 0) + 0.5))
                   ^ power AS idf
          FROM unnest(lexemes) AS q(lexeme)
          LEFT JOIN found f ON f.lexeme = q.lexeme,
          (SELECT coalesce(max(chunks), 0) AS total FROM found WHERE lexeme = '') n) x;
    IF sorted IS NULL THEN
        weights := '{0,0,0,0}';
        RETURN;
    END IF;
    cuts := ARRAY(SELECT i FROM generate_series(2, cardinality(idf)) i
                  WHERE idf[i - 1] - idf[i] > min_gap * idf[1]
                  ORDER BY idf[i - 1] - idf[i] DESC, i LIMIT 3);
    FOR i IN 1 .. cardinality(sorted) LOOP
        IF i = ANY(cuts) THEN
            tier := tier + 1;
        END IF;
        level := cardinality(cuts) - tier;
        sums[level + 1] := sums[level + 1] + idf[i] / idf[1];
        counts[level + 1] := counts[level + 1] + 1;
        IF level = 1 THEN
            c := c || sorted[i];
        ELSIF level = 2 THEN
            b := b || sorted[i];
        ELSIF level = 3 THEN
            a := a || sorted[i];
        END IF;
    END LOOP;
    weights := ARRAY(SELECT (CASE WHEN counts[k] > 0 THEN sums[k] / counts[k] ELSE 0 END)::real
                     FROM generate_series(1, 4) k);
END
$$"""


def upgrade() -> None:
    op.create_table(
        "collection_lexeme",
        sa.Column("lexeme", sa.Text, nullable=False),
        sa.Column(
            "collection_id",
            UUID,
            sa.ForeignKey("collection.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "lexeme", "collection_id", name="pk_collection_lexeme", postgresql_include=["chunks"]
        ),
    )
    op.execute(_COUNT)
    for event, when in _TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER document_chunk_lexemes_{event} {when} "
            "FOR EACH STATEMENT EXECUTE FUNCTION count_chunk_lexemes()"
        )
    op.execute(_WEIGHTING)
    op.execute("SET LOCAL work_mem = '256MB'")  # the grouping below, in memory
    op.execute(
        "INSERT INTO collection_lexeme (collection_id, lexeme, chunks) "
        + _DELTA.format(sign="", rows="document_chunk")
    )
    op.execute("ANALYZE collection_lexeme")


def downgrade() -> None:
    op.execute("DROP FUNCTION text_weighting(text[], uuid[], float8, float8)")
    for event in _TRIGGERS:
        op.execute(f"DROP TRIGGER document_chunk_lexemes_{event} ON document_chunk")
    op.execute("DROP FUNCTION count_chunk_lexemes()")
    op.drop_table("collection_lexeme")
