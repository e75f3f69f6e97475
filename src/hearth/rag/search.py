"""Retrieval in one SQL statement: HNSW cosine search restricted to the collections the
caller may read, fused with PostgreSQL full-text search by reciprocal rank fusion.

The permission filter is part of the query, not applied afterwards, and pgvector's
iterative index scan (0.8+) keeps walking the graph until enough rows pass it, so a filter
matching 1% of the rows still returns k neighbours.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from hearth.accounts.principal import Principal
from hearth.rag.models import TEXT_SEARCH_CONFIG
from hearth.rag.schemas import Citation

EXACT_SCAN_RATIO = 400  # exact vector scan when permitted chunks² < this * all chunks (below)
RRF_K = 60  # the usual reciprocal-rank-fusion constant (Cormack et al.)
# Full-text relevance: ts_rank with normalisation 1 (divided by 1 + log(length)), which
# ranked best of PostgreSQL's built-in functions on the labelled sets (bench/RESULTS.md);
# ts_rank_cd, made for phrase-like queries, ranks OR-queries of loose words poorly.

# Set on every pooled connection (so no extra round trip per query): keep scanning the
# HNSW graph while filtered-out rows are skipped; re-sorting by distance happens below.
SESSION_SETTINGS = {
    "hnsw.iterative_scan": "relaxed_order",
    # 100 sat at the edge of recall@10 0.98 on 100k clustered vectors; 200 gave 0.994
    # (bench/search_speed.py) for a few ms more. `on_connect` sets it by the table's size.
    "hnsw.ef_search": "200",
    # asyncpg prepares each statement; after five runs PostgreSQL may switch to a generic
    # plan made without the parameters, which for this query was a sequential scan of every
    # chunk (56 ms instead of 10 at 10k chunks). Planning each time costs about 1 ms.
    "plan_cache_mode": "force_custom_plan",
    # A plan's estimated cost above jit_above_cost (100,000, which the exact paths over large
    # tables reach) makes servers built with LLVM compile it: tens of ms, for a query meant
    # to take a few. The embedded server has no JIT; external ones often do.
    "jit": "off",
}

# The HNSW candidate list by the size of the chunk table: at 1M chunks, 200 gave recall@10
# 0.972 and 300 gave 0.987 (400: no better), for about 10% more time on the vector side;
# at 10k, 60 and 100 still gave 1.000, and 100 cut the vector side's p50 from 6.9 to
# 4.9 ms (bench/RESULTS.md). Read from the table's statistics when a pooled connection
# opens (they are recycled every 5 minutes, so a growing table is followed).
EF_SEARCH_FROM = ((0, 100), (20_000, 200), (300_000, 300))  # (chunks at least, ef_search)


def ef_search_for(chunks: float) -> int:
    ef = int(SESSION_SETTINGS["hnsw.ef_search"])
    for least, value in EF_SEARCH_FROM:
        if chunks >= least:
            ef = value
    return ef


async def on_connect(connection: Any) -> None:
    """Per-connection search settings that depend on the data (an asyncpg connection).
    Before the migrations have made the table, there is nothing to adjust."""
    chunks = await connection.fetchval(
        "SELECT greatest(reltuples, 0) FROM pg_class WHERE oid = to_regclass('document_chunk')"
    )
    ef = ef_search_for(chunks or 0)
    if ef != int(SESSION_SETTINGS["hnsw.ef_search"]):
        await connection.execute(f"SET hnsw.ef_search = {ef}")


# NOT MATERIALIZED: referenced twice in hybrid mode, the CTE would otherwise be computed
# once and scanned, and the planner then prices a full scan-and-sort of the chunks below the
# HNSW index (51 ms instead of 6 at 10k chunks, bench/RESULTS.md); inlined, each side plans
# with the real filter.
_ALLOWED = """
allowed AS NOT MATERIALIZED (
    SELECT c.id FROM collection c
    WHERE c.id = ANY(:collections)
      AND (c.owner_id = :user_id OR EXISTS (
            SELECT 1 FROM collection_grant g
            WHERE g.collection_id = c.id AND g.principal = ANY(:principals)))
)"""

# The vector side has two paths, and a one-time test at run time takes one of them (the
# other never runs). Over a few permitted chunks in a large table (one small collection),
# the filtered HNSW walk must visit about candidates * total / permitted tuples and can stop
# short of them (hnsw.max_scan_tuples): at 1M chunks and a 1% collection, 53 ms at recall
# 0.89-0.93, where scanning the collection's 10,000 vectors exactly takes 12 ms at recall 1
# (bench/RESULTS.md). Measured costs, ~4.4 µs per walked tuple and ~1.2 µs per exact
# distance, put the break-even near permitted² = 400 * total. `+ 0` keeps the exact path
# off the index. Permitted chunks come from the documents' counts (of at most 5,000
# documents, so the test stays cheap: past that the sum is a lower bound), the total from
# the table's statistics.
_VECTOR = f"""
scope AS (
    SELECT (SELECT coalesce(sum(chunks), 0) FROM (
                SELECT d.chunks FROM document d
                WHERE d.collection_id IN (SELECT id FROM allowed) LIMIT 5000) few) ^ 2
           < {EXACT_SCAN_RATIO} * (SELECT greatest(reltuples, 0) FROM pg_class
                                    WHERE oid = 'document_chunk'::regclass) AS exact
),
vec AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM (
        (SELECT id, embedding <=> CAST(CAST(:vector AS real[]) AS vector) AS distance
         FROM document_chunk
         WHERE collection_id IN (SELECT id FROM allowed) AND NOT (SELECT exact FROM scope)
         ORDER BY distance
         LIMIT :candidates)
        UNION ALL
        (SELECT id, (embedding <=> CAST(CAST(:vector AS real[]) AS vector)) + 0 AS distance
         FROM document_chunk
         WHERE collection_id IN (SELECT id FROM allowed) AND (SELECT exact FROM scope)
         ORDER BY distance
         LIMIT :candidates)
    ) nearest
)"""

# The full-text side's IDF. ts_rank weighs every query word alike, so the common words of a
# question ("effect", "cell", "use") counted as much as its rare ones. Each query lexeme's
# BM25 IDF, ln(1 + (N - df + 0.5) / (df + 0.5)), comes from `collection_lexeme`, summed
# over the collections searched, so a ranking never depends on collections the caller
# cannot read. ts_rank can weigh lexemes only by their label (A-D) in the chunk's tsvector:
# `text_weighting` (migration 0008) groups the query's lexemes in at most four tiers of
# similar IDF, the chunk's tsvector is relabelled by tier (setweight; the commonest tier
# keeps the default label D, so a question whose words are about equally rare relabels
# nothing and ranks exactly as before), and each tier weighs its mean IDF. Measured
# (nDCG@10, text / hybrid): SciFact 0.5676 / 0.6867 -> 0.6633 / 0.7094 (BM25: 0.665),
# HotpotQA 0.7530 / 0.8095 -> 0.7894 / 0.8203; four tiers came within 0.003 of weighing
# every lexeme by its own IDF (a ts_rank per lexeme: too slow); two lost 0.035 (text).
# IDF ** IDF_POWER, and MIN_GAP (IDF drops under this share of the top IDF start no tier),
# were picked on both sets. It costs ~0.1-0.3 ms a query (the lookup, over 1 or 100
# collections) and ~0.5 µs per ranked chunk when there are tiers to relabel.
IDF_POWER = 1.5
MIN_GAP = 0.1

_WEIGHTING = f"""
weighting AS (
    SELECT * FROM text_weighting(
        tsvector_to_array(to_tsvector('{TEXT_SEARCH_CONFIG}', :query)),
        ARRAY(SELECT id FROM allowed), {IDF_POWER}, {MIN_GAP})
)"""

_TEXT = f"""
txt AS (
    SELECT id, row_number() OVER (ORDER BY relevance DESC, id) AS rank FROM (
        SELECT id,
               CASE WHEN w.c IS NULL THEN ts_rank(tsv, query, 1)  -- one tier: all alike
                    ELSE ts_rank(w.weights,
                                 CASE WHEN w.b IS NULL THEN setweight(tsv, 'C', w.c)
                                      WHEN w.a IS NULL
                                      THEN setweight(setweight(tsv, 'C', w.c), 'B', w.b)
                                      ELSE setweight(setweight(setweight(tsv, 'C', w.c),
                                                               'B', w.b), 'A', w.a) END,
                                 query, 1) END AS relevance
        FROM document_chunk, weighting w,
             (SELECT CASE WHEN :exact THEN q
                          ELSE replace(q::text, ' & ', ' | ')::tsquery END
              FROM websearch_to_tsquery('{TEXT_SEARCH_CONFIG}', :query) q) AS t(query)
        WHERE collection_id IN (SELECT id FROM allowed) AND tsv @@ query
        ORDER BY relevance DESC, id
        LIMIT :candidates) matching
)"""

_FUSED = {
    "hybrid": f"""
fused AS (
    SELECT coalesce(vec.id, txt.id) AS id,
           coalesce(1.0 / ({RRF_K} + vec.rank), 0) + coalesce(1.0 / ({RRF_K} + txt.rank), 0)
             AS score
    FROM vec FULL OUTER JOIN txt ON vec.id = txt.id
)""",
    "vector": f"fused AS (SELECT id, 1.0 / ({RRF_K} + rank) AS score FROM vec)",
    "text": f"fused AS (SELECT id, 1.0 / ({RRF_K} + rank) AS score FROM txt)",
}

# Ties (equal ts_rank is common; equal fused scores too) are broken by chunk id on every
# side, so the order does not depend on where rows happen to sit in the table.
# Cut to k before fetching the rows' text and documents, not after.
_SELECT = """,
best AS (SELECT id, score FROM fused ORDER BY score DESC, id LIMIT :k)
SELECT ch.id, ch.document_id, ch.collection_id, ch.text, ch.metadata::text AS metadata,
       d.filename, d.title, best.score
FROM best
JOIN document_chunk ch ON ch.id = best.id
JOIN document d ON d.id = ch.document_id
ORDER BY best.score DESC, ch.id"""


@dataclass(frozen=True)
class Statement:
    """One mode's SQL, with its parameters as asyncpg takes them: `$1`, `$2`, ... in the
    order of `names`."""

    sql: str
    names: tuple[str, ...]


_PARAMETER = re.compile(r"(?<!:):(\w+)")


def _statement(mode: str) -> Statement:
    parts = [_ALLOWED]
    if mode in ("hybrid", "vector"):
        parts.append(_VECTOR)
    if mode in ("hybrid", "text"):
        parts += [_WEIGHTING, _TEXT]
    parts.append(_FUSED[mode])
    named = "WITH " + ",".join(parts) + _SELECT
    names = tuple(dict.fromkeys(_PARAMETER.findall(named)))
    return Statement(_PARAMETER.sub(lambda m: f"${names.index(m.group(1)) + 1}", named), names)


STATEMENTS = {mode: _statement(mode) for mode in _FUSED}


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
    """The arguments of `STATEMENTS[mode]`, in order."""
    values: dict[str, Any] = {
        "collections": collections,
        "user_id": principal.user_id,
        "principals": principal.principals,
        "query": query,
        "k": k,
        "candidates": max(candidates, k),
    }
    if mode != "vector":
        values["exact"] = uses_search_syntax(query)
    if mode != "text":
        assert vector is not None
        # Sent as float4[] in asyncpg's binary format and cast to `vector` by the server:
        # no 384-number text literal to format here and parse there.
        values["vector"] = vector
    return [values[name] for name in STATEMENTS[mode].names]


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
) -> list[Citation]:
    """Top `k` chunks for `query` among `collections` that `principal` may read."""
    arguments = search_parameters(
        principal, collections, query, vector, k=k, mode=mode, candidates=candidates
    )
    # This statement runs on the session's asyncpg connection directly (still prepared
    # once per connection, by asyncpg's statement cache): through SQLAlchemy it cost a
    # BEGIN and a ROLLBACK round trip around it, and result processing, for one read.
    # Inside a transaction the session already began, it runs in that transaction.
    connection = await session.connection()
    sql = STATEMENTS[mode].sql
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
            )
        )
    return citations
