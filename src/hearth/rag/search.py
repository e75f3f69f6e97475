"""Retrieval in one SQL call: HNSW cosine search restricted to the collections the
caller may read, fused with full-text search (BM25 over PostgreSQL's lexemes, from
postings read index-only) by a convex combination of the two sides' min-max-normalised
scores.

The permission filter is part of the query, not applied afterwards, and pgvector's
iterative index scan (0.8+) keeps walking the graph until enough rows pass it, so a filter
matching 1% of the rows still returns k neighbours. The SQL is a function each pooled
connection defines for itself (`FUNCTION_SQL`, by `on_connect`).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from hearth.accounts.principal import Principal
from hearth.rag.models import EMBEDDING_DIMENSIONS, TEXT_SEARCH_CONFIG
from hearth.rag.schemas import Citation, Explanation

EXACT_SCAN_RATIO = 400  # "few" permitted chunks: their number² < this * all chunks (below)
# Hybrid's score: VECTOR_WEIGHT * the vector side's normalised similarity + (1 - it) * the
# full-text side's normalised BM25 relevance, each min-max-normalised over its own
# candidates (the best 1, the last 0; not among a side's candidates: 0). Equal weights, not
# tuned to either labelled set: picked by the worst case over both sets and checked on
# each side's strong queries (bench/RESULTS.md, "fusion"), where it beat reciprocal-rank
# fusion (k 60) on both sets and on every subset, and weighted reciprocal ranks lost.
VECTOR_WEIGHT = 0.5

# Set on every pooled connection (so no extra round trip per query): keep scanning the
# HNSW graph while filtered-out rows are skipped; re-sorting by distance happens below.
SESSION_SETTINGS = {
    "hnsw.iterative_scan": "relaxed_order",
    # The candidates the graph walk keeps; `on_connect` sets it by the table's size.
    "hnsw.ef_search": "100",
    # A plan's estimated cost above jit_above_cost (100,000, which the exact paths over large
    # tables reach) makes servers built with LLVM compile it: tens of ms, for a query meant
    # to take a few. The embedded server has no JIT; external ones often do.
    "jit": "off",
}

# The HNSW candidate list by the size of the chunk table, for recall@10 >= 0.98 against
# exact search (bench/search_speed.py, bench/RESULTS.md session 9). On the graph built with
# ef_construction 128 (migration 0011), 100 gave 1.000 at 10k chunks and 0.990-0.998 at
# 100k (three builds); at 1M, 100 gave 0.932, 150 0.973, 200 0.988 and 300 0.993. Below
# 100 (the candidates a search hands to the fusion) pgvector would walk again for the
# rest. Between the sizes measured, the thresholds follow recall's fall with log(size);
# past 2M chunks, 300 is an extrapolation. Read from the table's statistics when a pooled
# connection opens (recycled every 5 minutes, so a growing table is followed).
EF_SEARCH_FROM = ((0, 100), (150_000, 200), (2_000_000, 300))  # (chunks at least, ef_search)


def ef_search_for(chunks: float) -> int:
    ef = int(SESSION_SETTINGS["hnsw.ef_search"])
    for least, value in EF_SEARCH_FROM:
        if chunks >= least:
            ef = value
    return ef


async def on_connect(connection: Any) -> None:
    """Prepare a new pooled connection (asyncpg's) for searching: define the search
    function, and set what depends on the data. Before the migrations have made the
    tables (and the `vector` type), there is nothing to adjust, and the function's body is
    not checked until it first runs."""
    await connection.execute(
        f"SET check_function_bodies = off; {FUNCTION_SQL}; RESET check_function_bodies"
    )
    chunks = await connection.fetchval(
        "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = to_regclass('document_chunk')"
    )
    # Set even when it equals SESSION_SETTINGS' value: a pool opened without those
    # settings (tools, tests) would otherwise search with pgvector's default of 40.
    await connection.execute(f"SET hnsw.ef_search = {ef_search_for(chunks or 0)}")


# The search runs as a function that each pooled connection defines for itself (in
# `pg_temp`, from this module, so code and SQL never drift apart, and no migration is
# needed to change it). A function because of planning: the one statement it replaced
# was planned anew at every call (1.2 ms of a 4 ms hybrid search at 100k chunks, half the
# query's own work at 10k), since a plan made without the parameter values went wrong.
# Inside the function, the permitted collections, the query's tsquery, its terms' weights
# and which vector path to take are worked out first, as values; then each case (mode and
# path) is its own simple statement, planned once per connection without the values
# (plan_cache_mode is the function's own setting) and reused. Each statement is written
# so that its plan does not depend on the values:
#
# - Many permitted chunks: the permission test is written `(collection_id IN (SELECT
#   unnest(allowed))) IS TRUE`, which cannot use the collection index. So the planner
#   cannot trade the HNSW walk for "all chunks of ~10 collections, sorted" (its guess for
#   an array it does not know), nor AND the full-text side's GIN bitmap with a bitmap of
#   most of the table (4 ms at 100k chunks, for nothing); pgvector's iterative scan keeps
#   walking the graph until enough rows pass the filter. The subquery, kept as a filter
#   by IS TRUE, becomes a hash table built once per query ("hashed SubPlan"): `= ANY` over
#   an array variable searches the array linearly for every row, which over 100
#   collections cost 0.3 ms of the full-text side's 1.05 at 100k chunks (1,700 postings),
#   and grows with the number of collections. The graph holds the vectors in half
#   precision (migration 0010); the candidates it gives are ranked by their
#   full-precision distance.
# - Few permitted chunks (against the whole table): the vector side computes their
#   distances exactly, and the full-text side seeks the permitted collections' postings
#   (below). Over a few permitted chunks in a large table (one small collection), the
#   filtered HNSW walk must visit about candidates * total / permitted tuples and can stop
#   short of them (hnsw.max_scan_tuples): at 1M chunks and a 1% collection, 53 ms at recall
#   0.89-0.93, where scanning the collection's 10,000 vectors exactly takes 12 ms at recall
#   1 (bench/RESULTS.md). Measured costs, ~4.4 µs per walked tuple and ~1.2 µs per exact
#   distance, put the break-even near permitted² = 400 * total. `+ 0` keeps the exact
#   path off the HNSW index; the function's `enable_seqscan = off` keeps it on the
#   collection index (never a scan of the whole table). Permitted chunks come from the
#   documents' counts (of at most 5,000 documents, so the test stays cheap: past that the
#   sum is a lower bound), the total from the table's statistics.
# - Full-text side: the tsquery and the weights are values, not expressions over the
#   parameters (those, not folded in a generic plan, were worked out again for every
#   matching row: 2 ms instead of 0.8 for 1,000 rows).
FUNCTION = "pg_temp.hearth_search"

_FEW = "collection_id = ANY(allowed)"
_MANY = "(collection_id IN (SELECT unnest(allowed))) IS TRUE"

_VECTOR = {
    False: f"""
vec AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM (
        SELECT id, embedding <=> v AS distance FROM (
            SELECT id, embedding FROM document_chunk
            WHERE {_MANY}
            ORDER BY embedding::halfvec({EMBEDDING_DIMENSIONS}) <=> vh
            LIMIT p_candidates) walked) nearest
)""",
    True: f"""
vec AS (
    SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM (
        SELECT id, (embedding <=> v) + 0 AS distance FROM document_chunk
        WHERE {_FEW}
        ORDER BY distance LIMIT p_candidates) nearest
)""",
}

# The full-text side ranks by BM25, from the postings in `chunk_term` (migration 0009):
# each query lexeme's postings in the permitted collections, read from the index alone
# (no chunk row is visited), summed per chunk. Each lexeme's IDF,
# ln(1 + (N - df + 0.5) / (df + 0.5)), and the average chunk length come from
# `collection_lexeme`, summed over the collections searched, so a ranking never depends on
# collections the caller cannot read. Per posting, the sum adds weight * tf / (tf + C1 +
# C2 * length), with weight = IDF * (k1 + 1), C1 = k1 (1 - b), C2 = k1 b / average length,
# worked out once per query, all in float8 (a bare decimal constant would make the sum
# numeric arithmetic, 0.2 ms more per 1,700 postings). The postings are keyed (lexeme,
# collection, chunk): when few chunks are permitted, the scan seeks each permitted
# collection's range of each lexeme; otherwise it reads each lexeme's whole range, the
# collection test unindexable and hashed as above.
# A query with a phrase or an exclusion (or, when strict, all its words required) is also
# checked against the chunk's tsvector, which holds word positions: the postings give
# every chunk holding any of the query's words, a superset of its matches.
# k1 and b were picked on both labelled sets (bench/RESULTS.md): Lucene's 1.2 and 0.75
# ranked SciFact better than ts_rank did but HotpotQA worse (nDCG@10 0.765 against 0.789);
# a lower k1, a word's repeats counting for less (as in ts_rank), did better on both.
_TEXT_FEW = "p.collection = ANY(allowed_numbers)"  # as above, on the collections' numbers
_TEXT_MANY = "(p.collection IN (SELECT unnest(allowed_numbers))) IS TRUE"
BM25_K1 = 0.7
BM25_B = 0.9
_C1 = round(BM25_K1 * (1 - BM25_B), 6)  # C1, a constant
_PHRASE_OR_NOT = "'!|<[0-9-]+>|&'"  # tsquery operators the postings alone cannot answer

_TEXT = f"""
txt AS (
    SELECT id, relevance, row_number() OVER (ORDER BY relevance DESC, id) AS rank FROM (
        SELECT id, relevance FROM (
            SELECT p.chunk_id AS id,
                   sum(t.weight * p.tf / (p.tf + {_C1!r}::float8 + c2 * p.length)) AS relevance
            FROM unnest(terms, weights) AS t(lexeme, weight)
            JOIN chunk_term p ON p.lexeme = t.lexeme COLLATE "C"
            WHERE {{permitted}}
            GROUP BY p.chunk_id) scored
        WHERE NOT checked OR EXISTS (
            SELECT FROM document_chunk ch WHERE ch.id = scored.id AND ch.tsv @@ q)
        ORDER BY relevance DESC, id
        LIMIT p_candidates) matching
)"""

# The query's lexemes that the permitted collections hold, with their BM25 weights, and
# the length normalisation's C2 (see above), from `collection_lexeme` ('' counts the
# collections' chunks, ' ' sums their lengths).
TEXT_TERMS = f"""
WITH found AS (
    SELECT lexeme, sum(chunks)::float8 AS chunks FROM collection_lexeme
    WHERE lexeme = ANY(tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', p_query))
                       || '{{"", " "}}'::text[])
      AND collection_id = ANY(allowed)
    GROUP BY lexeme
), totals AS (
    SELECT coalesce(max(chunks) FILTER (WHERE lexeme = ''), 0) AS n,
           coalesce(max(chunks) FILTER (WHERE lexeme = ' '), 0) AS length
    FROM found
)
SELECT array_agg(f.lexeme ORDER BY f.lexeme),
       array_agg(ln(1 + (t.n - f.chunks + 0.5) / (f.chunks + 0.5)) * ({BM25_K1} + 1)
                 ORDER BY f.lexeme),
       {BM25_K1} * {BM25_B} / greatest(max(t.length / greatest(t.n, 1)), 1)
FROM found f, totals t WHERE f.lexeme NOT IN ('', ' ')"""

# Each result keeps what explains its place: its rank on each side (NULL where that side did
# not find it among its candidates), its cosine distance and its BM25 relevance.
_SIDES = {
    "vector": "rank AS vector_rank, NULL::bigint AS text_rank, distance, NULL::float8 AS relevance",
    "text": "NULL::bigint AS vector_rank, rank AS text_rank, NULL::float8 AS distance, relevance",
}
# Each side's score normalised over its candidates: 1 for the best, 0 for the last (1 when
# they are all equal), from the side's extremes, worked out once per query.
_NORMALISED = {
    "vector": "coalesce((v.far - vec.distance) / nullif(v.far - v.near, 0), 1)",
    "text": "coalesce((txt.relevance - t.low) / nullif(t.high - t.low, 0), 1)",
}
_EXTREMES = {
    "vector": "(SELECT min(distance) AS near, max(distance) AS far FROM vec) v",
    "text": "(SELECT min(relevance) AS low, max(relevance) AS high FROM txt) t",
}
_FUSED = {
    "hybrid": f"""
fused AS (
    SELECT coalesce(vec.id, txt.id) AS id,
           CASE WHEN vec.id IS NULL THEN 0
                ELSE {VECTOR_WEIGHT!r}::float8 * {_NORMALISED["vector"]} END
           + CASE WHEN txt.id IS NULL THEN 0
                  ELSE {1 - VECTOR_WEIGHT!r}::float8 * {_NORMALISED["text"]} END AS score,
           vec.rank AS vector_rank, txt.rank AS text_rank, vec.distance, txt.relevance
    FROM vec FULL OUTER JOIN txt ON vec.id = txt.id, {_EXTREMES["vector"]}, {_EXTREMES["text"]}
)""",
    "vector": f"""
fused AS (
    SELECT id, {_NORMALISED["vector"]} AS score, {_SIDES["vector"]}
    FROM vec, {_EXTREMES["vector"]}
)""",
    "text": f"""
fused AS (
    SELECT id, {_NORMALISED["text"]} AS score, {_SIDES["text"]}
    FROM txt, {_EXTREMES["text"]}
)""",
}

# Ties (equal BM25 scores are common; equal fused scores too) are broken by chunk id on every
# side, so the order does not depend on where rows happen to sit in the table.
# Cut to k before fetching the rows' text and documents, not after.
_SELECT = """,
best AS (SELECT * FROM fused ORDER BY score DESC, id LIMIT p_k)
SELECT ch.id, ch.document_id, ch.collection_id, ch.text, ch.metadata::text,
       d.filename::text, d.title::text, best.score::float8, best.vector_rank,
       best.text_rank, (1 - best.distance)::float8, best.relevance::float8
FROM best
JOIN document_chunk ch ON ch.id = best.id
JOIN document d ON d.id = ch.document_id
ORDER BY best.score DESC, ch.id"""


def case_sql(mode: str, few: bool) -> str:
    """The statement the function runs for one case (`few`: few chunks are permitted)."""
    parts = []
    if mode in ("hybrid", "vector"):
        parts.append(_VECTOR[few])
    if mode in ("hybrid", "text"):
        parts.append(_TEXT.replace("{permitted}", _TEXT_FEW if few else _TEXT_MANY))
    parts.append(_FUSED[mode])
    return "WITH " + ",".join(parts) + _SELECT


def _cases() -> str:
    branches = []
    for mode in _FUSED:
        for few in (True, False):
            test = f"p_mode = '{mode}' AND {'' if few else 'NOT '}few"
            branches.append(f"{test} THEN\n        RETURN QUERY {case_sql(mode, few)};")
    return "IF " + "\n    ELSIF ".join(branches) + "\n    END IF;"


# Named as in `search_parameters`, in this order.
PARAMETERS = (
    "mode",
    "collections",
    "user_id",
    "principals",
    "query",
    "strict",
    "vector",
    "k",
    "candidates",
)

FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {FUNCTION}(
    p_mode text, p_collections uuid[], p_user_id text, p_principals text[], p_query text,
    p_strict boolean, p_vector real[], p_k integer, p_candidates integer)
RETURNS TABLE (id bigint, document_id uuid, collection_id uuid, text text, metadata text,
               filename text, title text, score float8, vector_rank bigint, text_rank bigint,
               similarity float8, relevance float8)
LANGUAGE plpgsql STABLE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $fn$
#variable_conflict use_column
DECLARE
    allowed uuid[];
    allowed_numbers integer[];
    v vector;
    vh halfvec;
    q tsquery;
    checked boolean;
    terms text[];
    weights float8[];
    c2 float8;
    few boolean;
BEGIN
    SELECT coalesce(array_agg(c.id), '{{}}'), coalesce(array_agg(c.number), '{{}}')
    INTO allowed, allowed_numbers
    FROM collection c
    WHERE c.id = ANY(p_collections)
      AND (c.owner_id = p_user_id OR EXISTS (
            SELECT 1 FROM collection_grant g
            WHERE g.collection_id = c.id AND g.principal = ANY(p_principals)));
    few := (SELECT coalesce(sum(chunks), 0) FROM (
                SELECT d.chunks FROM document d
                WHERE d.collection_id = ANY(allowed) LIMIT 5000) permitted) ^ 2
           < {EXACT_SCAN_RATIO} * (SELECT greatest(reltuples, 0) FROM pg_class
                                   WHERE oid = 'document_chunk'::regclass);
    IF p_mode <> 'text' THEN
        v := p_vector::vector;
        vh := v::halfvec;
    END IF;
    IF p_mode <> 'vector' THEN
        q := websearch_to_tsquery('{TEXT_SEARCH_CONFIG}', p_query);
        IF NOT p_strict THEN
            q := replace(q::text, ' & ', ' | ')::tsquery;
        END IF;
        checked := q::text ~ {_PHRASE_OR_NOT};
        {TEXT_TERMS.strip()} INTO terms, weights, c2;
    END IF;
    {_cases()}
END
$fn$"""

CALL_SQL = f"SELECT * FROM {FUNCTION}({', '.join(f'${i + 1}' for i in range(len(PARAMETERS)))})"


_EXCLUSION = re.compile(r"(^|\s)-\w")


def uses_search_syntax(query: str) -> bool:
    """Whether the query must keep websearch_to_tsquery's AND semantics.

    A question in plain words would otherwise match only passages containing every one of
    its words. As with BM25, any of them may match (AND becomes OR; "phrases" stay phrases)
    and the ranking rewards passages with more of them. Only an -exclusion needs the
    strict form, since "a OR NOT b" would match nearly everything.
    """
    return bool(_EXCLUSION.search(query))


def search_parameters(
    principal: Principal,
    collections: list[uuid.UUID],
    query: str,
    vector: list[float] | None,
    *,
    k: int,
    mode: Literal["hybrid", "vector", "text"],
    candidates: int,
) -> list[Any]:
    """The arguments of `CALL_SQL`, in order (`PARAMETERS`)."""
    if mode != "text":
        assert vector is not None
    values: dict[str, Any] = {
        "mode": mode,
        "collections": collections,
        "user_id": principal.user_id,
        "principals": principal.principals,
        "query": query,
        "strict": uses_search_syntax(query),
        # Sent as float4[] in asyncpg's binary format and cast to `vector` by the server:
        # no 384-number text literal to format here and parse there.
        "vector": vector if mode != "text" else None,
        "k": k,
        "candidates": max(candidates, k),
    }
    return [values[name] for name in PARAMETERS]


async def search_chunks(
    session: AsyncSession,
    principal: Principal,
    collections: list[uuid.UUID],
    query: str,
    vector: list[float] | None,
    *,
    k: int,
    mode: Literal["hybrid", "vector", "text"],
    candidates: int,
    explain: bool = False,
) -> list[Citation]:
    """Top `k` chunks for `query` among `collections` that `principal` may read; with
    `explain`, each says how each side ranked it."""
    arguments = search_parameters(
        principal, collections, query, vector, k=k, mode=mode, candidates=candidates
    )
    # This call runs on the session's asyncpg connection directly (still prepared once per
    # connection, by asyncpg's statement cache): through SQLAlchemy it cost a BEGIN and a
    # ROLLBACK round trip around it, and result processing, for one read. Inside a
    # transaction the session already began, it runs in that transaction.
    connection = await session.connection()
    sql = CALL_SQL
    # SQLAlchemy's cursor is bypassed: tell its listeners (the statement counter behind
    # `hearth_db_statements_total`) that a statement goes out all the same.
    sync = connection.sync_connection
    if sync is not None:
        sync.dispatch.before_cursor_execute(sync, None, sql, arguments, None, False)
    raw = await connection.get_raw_connection()
    rows = await raw.driver_connection.fetch(sql, *arguments)
    citations = []
    for row in rows:
        meta = json.loads(row["metadata"])
        citations.append(
            Citation(
                chunk_id=row["id"],
                document_id=row["document_id"],
                collection_id=row["collection_id"],
                filename=row["filename"],
                title=row["title"],
                text=row["text"],
                score=float(row["score"]),
                page=meta.get("page"),
                page_end=meta.get("page_end"),
                headings=meta.get("headings", []),
                start=meta.get("start", 0),
                end=meta.get("end", 0),
                explain=Explanation(
                    vector_rank=row["vector_rank"],
                    text_rank=row["text_rank"],
                    similarity=row["similarity"],
                    relevance=row["relevance"],
                    score=row["score"],
                )
                if explain
                else None,
            )
        )
    return citations
