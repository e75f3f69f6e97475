"""Search speed of Hearth's retrieval: p50/p95 latency of hybrid, vector and full-text search
through `search_chunks`, and recall@10 of the vector search against exact search, on
synthetic clustered 384-d corpora in the embedded PostgreSQL.

    python bench/search_speed.py                              # 10k and 100k chunks
    python bench/search_speed.py --sizes 1000000              # 1M (long: load, index build)
    python bench/search_speed.py --sizes 100000 --variant hnsw.ef_search=200   # and tuned
    python bench/search_speed.py --sizes 100000 --explain     # EXPLAIN ANALYZE each case

Runs from the venv of `make dev`, or of `pip install -e .` alone; no peer, and no TCP port
(the embedded PostgreSQL listens on a Unix socket), so there is no `--port-base`.

Each size runs in a fresh embedded PostgreSQL started by Hearth's own `open_database`
(migrations and per-connection search settings as in the product). The corpus:

- vectors: unit vectors around 100-1000 random centres on the sphere (n/1000 clusters,
  at least 100, at most 1000); the noise has a power-law spectrum (variance along the j-th
  axis of a fixed random basis proportional to 1/j, effective dimension about 26), since
  sentence embeddings have a low intrinsic dimension; `--noise isotropic` gives the much
  harder isotropic 384-d noise. Queries are held-out points of the same distribution.
- texts: 48 pseudo-words, 16 of them drawn from the chunk's cluster's 20 topic words and
  32 from a Zipf-distributed background vocabulary; a query's text is 3 topic words of its
  cluster, so full-text search matches about one cluster's worth of chunks.
- 100 collections of one document each; each collection holds 1% of the chunks, spread at
  random over the clusters and over the table's pages (a worst case for filtered scans:
  real ingestion writes a document's chunks together); the filtered cases search
  collection 0 only.

Loading bypasses the ingestion pipeline: the HNSW and GIN indexes are dropped, the chunks
are copied in binary COPY, then both indexes are recreated from their own definitions
(read from pg_indexes, so exactly as the migration made them), timed and measured. The
COPY's time includes what the triggers on the chunk table do with each batch: the lexeme
counts and the BM25 postings (`chunk_term`, its index kept).

Each case (hybrid, vector, text over all 100 collections; hybrid and vector over the 1%
collection) runs its warm-up queries, then its measured ones, one at a time through
`search_chunks` with a real `Principal` and Hearth's `Database`. Also reported: recall@10
of vector search against numpy's exact top 10, the fewest results a filtered query got,
the cost of a pooled session around `SELECT 1`, and the issue's yardstick of the machine:
a bare pgvector HNSW query (no Hearth code) over the same index, at the recall the issue
measured it at. A
`--variant` (and `--passes 2`, Hearth's settings again) is measured after Hearth's
settings, so on the same database it also sees warmer caches.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os
import platform
import re
import sys
import tempfile
import time
import uuid
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import numpy as np
from pgvector.asyncpg import register_vector
from sqlalchemy import text

from hearth.accounts.principal import Principal
from hearth.config import Settings
from hearth.db.session import Database
from hearth.rag.models import TEXT_SEARCH_CONFIG
from hearth.rag.search import (
    EXACT_SCAN_RATIO,
    SESSION_SETTINGS,
    TEXT_TERMS,
    case_sql,
    on_connect,
    search_chunks,
)
from hearth.server import open_database

DIM = 384
K = 10
COLLECTIONS = 100
WORDS_PER_CHUNK = 48
TOPIC_WORDS_PER_CHUNK = 16
TOPIC_WORDS = 20
VOCABULARY = 20_000
COMMON_WORDS = 1000  # the most frequent background words are never topic words
QUERY_WORDS = 3
SPREAD = 0.9  # norm of the noise added to a centre: same-cluster cosine about 0.55
WARMUP = 20
SEED = 20261124
OWNER = "bench-user"
HNSW_INDEX = "ix_document_chunk_embedding_half"
GIN_INDEX = "ix_document_chunk_tsv"
CASES = (  # (label, mode, filtered to the 1% collection)
    ("hybrid", "hybrid", False),
    ("vector", "vector", False),
    ("text", "text", False),
    ("hybrid 1%", "hybrid", True),
    ("vector 1%", "vector", True),
)


# -- corpus ----------------------------------------------------------------------------


@dataclass
class Corpus:
    vectors: np.ndarray  # (n, DIM) float32, unit length
    texts: list[str]
    collection: np.ndarray  # (n,) collection number 0..99
    ordinal: np.ndarray  # (n,) position of the chunk in its collection's document
    queries: np.ndarray  # (q, DIM)
    query_texts: list[str]
    clusters: int

    @property
    def size(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(self.vectors[:: max(1, self.size // 1000)].tobytes())
        digest.update("\n".join(self.texts[:: max(1, self.size // 1000)]).encode())
        return f"n={self.size} {digest.hexdigest()[:16]}"


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _vocabulary(rng: np.random.Generator, size: int) -> list[str]:
    """Pronounceable pseudo-words of three or four syllables: no English stop words, and
    the English stemmer leaves them (nearly) distinct."""
    syllables = [c + v for c in "bdfgklmnprtvz" for v in "aeiou"]
    words: set[str] = set()
    while len(words) < size:
        parts = rng.integers(0, len(syllables), (size, 4))
        lengths = rng.integers(3, 5, size)
        words.update(
            "".join(syllables[p] for p in row[:length])
            for row, length in zip(parts.tolist(), lengths.tolist(), strict=True)
        )
    return sorted(words)[:size]


def make_corpus(n: int, queries: int, *, noise: str, seed: int = SEED) -> Corpus:
    """The same corpus for the same n, noise and seed, whatever the number of queries (a
    kept database is checked against its fingerprint)."""
    rng = np.random.default_rng([seed, n])
    clusters = min(1000, max(100, n // 1000))
    centres = _normalize(rng.standard_normal((clusters, DIM)).astype(np.float32))
    basis = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
    if noise == "powerlaw":
        scales = 1 / np.sqrt(np.arange(1, DIM + 1))
    else:
        scales = np.ones(DIM)
    scales = (SPREAD * scales / np.linalg.norm(scales)).astype(np.float32)
    vocab = _vocabulary(rng, VOCABULARY)
    # Background words follow Zipf's law over a random ranking of the vocabulary.
    ranking = rng.permutation(VOCABULARY)
    weights = 1 / np.arange(1, VOCABULARY + 1)
    weights /= weights.sum()
    topic = np.stack(
        [rng.choice(ranking[COMMON_WORDS:], TOPIC_WORDS, replace=False) for _ in range(clusters)]
    )

    def points(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
        cluster = rng.integers(0, clusters, count)
        vectors = np.empty((count, DIM), dtype=np.float32)
        for start in range(0, count, 100_000):
            stop = min(start + 100_000, count)
            g = rng.standard_normal((stop - start, DIM), dtype=np.float32) * scales
            vectors[start:stop] = _normalize(centres[cluster[start:stop]] + g @ basis)
        return vectors, cluster

    data_rng = np.random.default_rng([seed, n, 1])
    vectors, cluster = points(data_rng, n)
    words = np.empty((n, WORDS_PER_CHUNK), dtype=np.int64)
    words[:, :TOPIC_WORDS_PER_CHUNK] = topic[
        cluster[:, None], data_rng.integers(0, TOPIC_WORDS, (n, TOPIC_WORDS_PER_CHUNK))
    ]
    words[:, TOPIC_WORDS_PER_CHUNK:] = ranking[
        data_rng.choice(VOCABULARY, (n, WORDS_PER_CHUNK - TOPIC_WORDS_PER_CHUNK), p=weights)
    ]
    words = data_rng.permuted(words, axis=1)
    texts = [" ".join(map(vocab.__getitem__, row)) for row in words.tolist()]
    collection = data_rng.permutation(n) % COLLECTIONS
    ordinal = np.empty(n, dtype=np.int64)
    for c in range(COLLECTIONS):
        members = np.flatnonzero(collection == c)
        ordinal[members] = np.arange(len(members))

    query_rng = np.random.default_rng([seed, n, 2])
    query_vectors, query_cluster = points(query_rng, queries + WARMUP)
    query_texts = [
        " ".join(
            vocab[w] for w in topic[c, query_rng.choice(TOPIC_WORDS, QUERY_WORDS, replace=False)]
        )
        for c in query_cluster.tolist()
    ]
    return Corpus(
        vectors=vectors,
        texts=texts,
        collection=collection,
        ordinal=ordinal,
        queries=query_vectors,
        query_texts=query_texts,
        clusters=clusters,
    )


# -- loading ---------------------------------------------------------------------------


@dataclass
class Load:
    collection_ids: list[uuid.UUID]
    reused: bool = False
    copy_s: float = 0.0
    hnsw_s: float = 0.0
    gin_s: float = 0.0
    hnsw_bytes: int = 0
    gin_bytes: int = 0
    table_bytes: int = 0
    postings_bytes: int = 0  # chunk_term: table and index
    maintenance_work_mem: str = ""
    parallel_workers: int = 0
    notices: list[str] = field(default_factory=list)


def _dsn(database: Database) -> str:
    return database.url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def load(
    database: Database, corpus: Corpus, *, maintenance_work_mem: str, workers: int
) -> Load:
    """Put the corpus in the database (unless a kept data directory already holds it) and
    rebuild the search indexes, timing each step."""
    conn = await asyncpg.connect(_dsn(database))
    try:
        await register_vector(conn)
        result = await _load(conn, corpus, maintenance_work_mem, workers)
        result.hnsw_bytes = await conn.fetchval(f"SELECT pg_relation_size('{HNSW_INDEX}')")
        result.gin_bytes = await conn.fetchval(f"SELECT pg_relation_size('{GIN_INDEX}')")
        result.table_bytes = await conn.fetchval(
            "SELECT pg_table_size('document_chunk')"  # heap + TOAST, no indexes
        )
        result.postings_bytes = await conn.fetchval("SELECT pg_total_relation_size('chunk_term')")
        return result
    finally:
        await conn.close()


async def _load(
    conn: asyncpg.Connection, corpus: Corpus, maintenance_work_mem: str, workers: int
) -> Load:
    existing = await conn.fetch(
        "SELECT id, description FROM collection WHERE owner_id = $1 ORDER BY name", OWNER
    )
    if existing:
        if existing[0]["description"] != corpus.fingerprint:
            raise RuntimeError("the kept database holds another corpus: use a new --data-dir")
        return Load([r["id"] for r in existing], reused=True)

    ids = [uuid.UUID(int=i + 1) for i in range(COLLECTIONS)]
    docs = [uuid.UUID(int=(1 << 64) + i + 1) for i in range(COLLECTIONS)]
    counts = np.bincount(corpus.collection, minlength=COLLECTIONS).tolist()
    await conn.executemany(
        "INSERT INTO collection (id, name, description, owner_id, embedding_model) "
        "VALUES ($1, $2, $3, $4, 'synthetic-384')",
        [(cid, f"bench-{i:02d}", corpus.fingerprint, OWNER) for i, cid in enumerate(ids)],
    )
    await conn.executemany(
        "INSERT INTO stored_file (sha256, size) VALUES ($1, 0)",
        [(f"{i:064x}",) for i in range(COLLECTIONS)],
    )
    await conn.executemany(
        "INSERT INTO document (id, collection_id, file_sha256, filename, content_type, title, "
        "status, chunks, embedded_chunks) VALUES ($1, $2, $3, $4, 'text/plain', $6, 'ready', "
        "$5, $5)",
        [
            (docs[i], ids[i], f"{i:064x}", f"doc-{i:02d}.txt", counts[i], f"doc {i}")
            for i in range(COLLECTIONS)
        ],
    )

    definitions = dict(
        await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY($1::text[])",
            [HNSW_INDEX, GIN_INDEX],
        )
    )
    for name in definitions:
        await conn.execute(f"DROP INDEX {name}")

    started = time.perf_counter()
    batch = 20_000
    for start in range(0, corpus.size, batch):
        stop = min(start + batch, corpus.size)
        await conn.copy_records_to_table(
            "document_chunk",
            columns=["collection_id", "document_id", "ordinal", "text", "embedding", "metadata"],
            records=[
                (ids[c], docs[c], o, t, v, "{}")
                for c, o, t, v in zip(
                    corpus.collection[start:stop].tolist(),
                    corpus.ordinal[start:stop].tolist(),
                    corpus.texts[start:stop],
                    corpus.vectors[start:stop],
                    strict=True,
                )
            ],
        )
        if corpus.size >= 200_000 and stop % 200_000 == 0:
            _progress(f"  copied {stop} chunks ({time.perf_counter() - started:.0f} s)")
    copy_s = time.perf_counter() - started
    # Chunk i of the corpus must be row id i + 1: recall is computed from the ids.
    low, high, count = await conn.fetchrow("SELECT min(id), max(id), count(*) FROM document_chunk")
    if (low, high, count) != (1, corpus.size, corpus.size):
        raise RuntimeError(f"unexpected chunk ids: {low}..{high}, {count} rows")

    notices: list[str] = []
    conn.add_log_listener(lambda _c, msg: notices.append(str(msg)))
    await conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
    await conn.execute(f"SET max_parallel_maintenance_workers = {workers}")
    started = time.perf_counter()
    await conn.execute(definitions[HNSW_INDEX])
    hnsw_s = time.perf_counter() - started
    started = time.perf_counter()
    await conn.execute(definitions[GIN_INDEX])
    gin_s = time.perf_counter() - started
    await conn.execute("VACUUM ANALYZE document_chunk")
    await conn.execute("VACUUM ANALYZE collection")
    await conn.execute("VACUUM ANALYZE document")
    # The full-text side's lexeme counts (kept by triggers during the COPY): the search
    # reads them index-only, which needs the visibility map a VACUUM sets.
    await conn.execute("VACUUM ANALYZE collection_lexeme")
    await conn.execute("VACUUM ANALYZE chunk_term")  # BM25 postings, read index-only too
    await conn.execute("CHECKPOINT")
    return Load(
        ids,
        copy_s=copy_s,
        hnsw_s=hnsw_s,
        gin_s=gin_s,
        maintenance_work_mem=maintenance_work_mem,
        parallel_workers=workers,
        notices=notices,
    )


# -- measuring -------------------------------------------------------------------------


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Indices (into the corpus) of the k nearest rows by cosine, among `rows`."""
    subset = vectors if len(rows) == len(vectors) else vectors[rows]
    best = np.empty((len(queries), K), dtype=np.int64)
    for start in range(0, len(queries), 50):
        sims = queries[start : start + 50] @ subset.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        best[start : start + 50] = rows[top]
    return best


@dataclass
class Case:
    label: str = ""
    latencies: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000

    @property
    def recall(self) -> float | None:
        return float(np.mean(self.recalls)) if self.recalls else None


def exact_truth(corpus: Corpus, queries: int) -> dict[bool, np.ndarray]:
    """Exact top k of each query: over all chunks (False) and over the 1% collection (True)."""
    every = np.arange(corpus.size)
    small = np.flatnonzero(corpus.collection == 0)
    return {
        False: exact_top_k(corpus.vectors, corpus.queries[:queries], every),
        True: exact_top_k(corpus.vectors, corpus.queries[:queries], small),
    }


async def measure(
    database: Database,
    corpus: Corpus,
    collection_ids: list[uuid.UUID],
    truth: dict[bool, np.ndarray],
    *,
    candidates: int,
    queries: int,
) -> dict[str, Case]:
    """Each case in turn: warm-up queries, then the measured ones, one at a time, each
    through `search_chunks` in its own session as the documents service runs it."""
    principal = Principal(user_id=OWNER)

    async def one(qi: int, mode: str, filtered: bool) -> tuple[float, list[int]]:
        vector = corpus.queries[qi].tolist()
        scope = collection_ids[:1] if filtered else collection_ids
        started = time.perf_counter()
        async with database.session() as session:
            hits = await search_chunks(
                session,
                principal,
                scope,
                corpus.query_texts[qi],
                vector,
                k=K,
                mode=mode,  # type: ignore[arg-type]
                candidates=candidates,
            )
        return time.perf_counter() - started, [h.chunk_id - 1 for h in hits]

    # The floor of any search: a session from the pool around a trivial statement.
    cases = {"SELECT 1": Case()}
    for i in range(WARMUP + queries):
        started = time.perf_counter()
        async with database.session() as session:
            await session.execute(text("SELECT 1"))
        if i >= WARMUP:
            cases["SELECT 1"].latencies.append(time.perf_counter() - started)
    for label, mode, filtered in CASES:
        case = cases[label] = Case()
        # Held-out queries not measured: the last WARMUP of the generated ones.
        for qi in range(len(corpus.queries) - WARMUP, len(corpus.queries)):
            await one(qi, mode, filtered)
        for qi in range(queries):
            elapsed, found = await one(qi, mode, filtered)
            case.latencies.append(elapsed)
            case.counts.append(len(found))
            if mode == "vector":
                case.recalls.append(len(set(found) & set(truth[filtered][qi].tolist())) / K)
    return cases


BARE_EF_SEARCH = (40, 60, 80, 100, 150, 200, 300)  # pgvector's default first
BARE_RECALL = 0.97  # what the probe reached...
BARE_P95_MS = 1.7  # ...in this p95 at 100k chunks, where it set the floors
FLOOR_P95_MS = {10_000: 3.0, 100_000: 5.0, 1_000_000: 20.0}


async def bare_hnsw(database: Database, corpus: Corpus, truth: np.ndarray, *, queries: int) -> Case:
    """The issue's yardstick of the machine: a bare pgvector HNSW query (no Hearth code, no
    filter, no text) over the same index, on a plain asyncpg connection, at the smallest
    ef_search that reaches the probe's recall. The issue measured 1.7 ms p95 at recall@10
    0.97 at 100k chunks on the machine it set its floors on; this says how this machine
    compares. (Its corpus is not known: a like-for-like yardstick, not an identical one.)"""
    conn = await asyncpg.connect(_dsn(database))
    try:
        await register_vector(conn)
        sql = (
            f"SELECT id FROM document_chunk ORDER BY embedding::halfvec({DIM}) <=> "
            f"$1::vector::halfvec({DIM}) LIMIT {K}"
        )
        for ef in BARE_EF_SEARCH:
            await conn.execute(f"SET hnsw.ef_search = {ef}")
            case = Case(label=f"ef_search {ef}")
            warm = range(len(corpus.queries) - WARMUP, len(corpus.queries))
            for qi in [*warm, *range(queries)]:
                started = time.perf_counter()
                rows = await conn.fetch(sql, corpus.queries[qi])
                elapsed = time.perf_counter() - started
                if qi < queries:
                    found = {r["id"] - 1 for r in rows}
                    case.latencies.append(elapsed)
                    case.recalls.append(len(found & set(truth[qi].tolist())) / K)
            if (case.recall or 0) >= BARE_RECALL:
                break
        return case
    finally:
        await conn.close()


def _shorten(line: str) -> str:
    line = re.sub(r"'\[[^\]]{100,}\]'", "'[...]'", line)
    line = re.sub(r"'\{[0-9.e,-]{100,}\}'", "'{...}'", line)
    return re.sub(r"'\{[0-9a-f,-]{100,}\}'", "'{...}'", line)


async def explain(database: Database, corpus: Corpus, collection_ids: list[uuid.UUID]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement the search function runs for each case,
    as the function plans it: without the values (a generic plan), which are worked out
    first as the function does and passed as parameters."""
    variables = {  # the function's variables in the case statements, and their types
        "allowed_numbers": "int[]",
        "allowed": "uuid[]",
        "v": "vector",
        "vh": "halfvec",
        "q": "tsquery",
        "checked": "boolean",
        "terms": "text[]",
        "weights": "float8[]",
        "c2": "float8",
        "p_candidates": "int",
        "p_k": "int",
    }
    async with database.session() as session:
        conn = (await (await session.connection()).get_raw_connection()).driver_connection
        await conn.execute("SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off")
        for index, (label, mode, filtered) in enumerate(CASES):
            allowed = collection_ids[:1] if filtered else collection_ids
            # The values the function works out before its case statement (FUNCTION_SQL's
            # preamble; the bench's collections are all the owner's, one document each).
            few = await conn.fetchval(
                "SELECT (SELECT coalesce(sum(chunks), 0) FROM document "
                f"WHERE collection_id = ANY($1)) ^ 2 < {EXACT_SCAN_RATIO} * "
                "(SELECT reltuples FROM pg_class WHERE oid = 'document_chunk'::regclass)",
                allowed,
            )
            sql = case_sql(mode, few)
            for i, name in enumerate(variables):
                sql = re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", f"${i + 1}", sql)
            query = corpus.query_texts[0]
            q = await conn.fetchval(
                f"SELECT replace(websearch_to_tsquery('{TEXT_SEARCH_CONFIG}', $1)::text, "
                "' & ', ' | ')",
                query,
            )
            terms, weights, c2 = await conn.fetchrow(
                TEXT_TERMS.replace("p_query", "$1").replace("allowed", "$2::uuid[]"),
                query,
                allowed,
            )
            numbers = await conn.fetchval(
                "SELECT array_agg(number) FROM collection WHERE id = ANY($1)", allowed
            )
            vector = "[" + ",".join(map(str, corpus.queries[0].tolist())) + "]"
            values = [numbers, allowed, vector, vector, q, False, terms, weights, c2, 100, K]
            types = ", ".join(variables.values())
            await conn.execute(f"PREPARE case_{index} ({types}) AS {sql}")
            literals = ", ".join(
                _literal(x, t) for x, t in zip(values, variables.values(), strict=True)
            )
            for _ in range(3):  # warm, then show the last
                plan = await conn.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE case_{index} ({literals})"
                )
            path = "few permitted" if few else "many permitted"
            print(
                f"\n-- EXPLAIN ANALYZE, {label} ({path}, generic plan):\n"
                + "\n".join(_shorten(r[0]) for r in plan)
            )
        # Only our own statements: DEALLOCATE ALL would also drop asyncpg's cached ones on
        # this pooled connection, and the measuring after it would fail.
        deallocate = "".join(f"DEALLOCATE case_{i}; " for i in range(len(CASES)))
        await conn.execute(f"RESET plan_cache_mode; RESET enable_seqscan; {deallocate}")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _literal(value: object, sql_type: str) -> str:
    if value is None:
        return f"NULL::{sql_type}"
    if isinstance(value, list):
        return f"ARRAY[{', '.join(_quote(str(x)) for x in value)}]::{sql_type}"
    return f"{_quote(str(value))}::{sql_type}"


# -- running ---------------------------------------------------------------------------


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mwm(n: int) -> str:
    """maintenance_work_mem for the HNSW build: the whole graph in memory (about 2.2 kB an
    element at 384 dimensions and m = 16), at least 1 GB."""
    return f"{max(1024, math.ceil(n * 3 / 1024 + 256))}MB"


def machine() -> str:
    model = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as info:
        mem_kb = int(info.readline().split()[1])
    return (
        f"{os.cpu_count()} cores ({model}), {mem_kb / 1024**2:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def _load_avg() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


@dataclass
class SizeResult:
    size: int
    clusters: int
    load: Load
    cases: dict[str, Case]
    variants: dict[str, dict[str, Case]]
    bare: Case  # the yardstick (`bare_hnsw`), measured once per size
    load_avg: str
    server: str


async def run_size(args: argparse.Namespace, n: int) -> SizeResult:
    started = time.perf_counter()
    corpus = make_corpus(n, args.queries, noise=args.noise)
    _progress(
        f"[{n}] corpus: {corpus.clusters} clusters, generated in "
        f"{time.perf_counter() - started:.0f} s"
    )
    with tempfile.TemporaryDirectory(prefix="hearth-search-speed-") as tmp:
        data_dir = (args.data_dir / f"size-{n}") if args.data_dir else Path(tmp)
        settings = Settings(data_dir=data_dir, log_level="warning")
        async with AsyncExitStack() as stack:
            database = await open_database(settings, stack)
            workers = max(0, (os.cpu_count() or 1) - 1)
            loaded = await load(database, corpus, maintenance_work_mem=_mwm(n), workers=workers)
            # Pooled connections size hnsw.ef_search by the table when they open (search.py's
            # on_connect): open them again now that it is loaded.
            await database.engine.dispose()
            async with database.session() as session:
                server = (
                    await session.execute(
                        text(
                            "SELECT current_setting('server_version') || ', pgvector ' || "
                            "extversion || ', shared_buffers ' || "
                            "current_setting('shared_buffers') || ', random_page_cost ' || "
                            "current_setting('random_page_cost') || ', hnsw.ef_search ' || "
                            "current_setting('hnsw.ef_search') FROM pg_extension "
                            "WHERE extname = 'vector'"
                        )
                    )
                ).scalar_one()
            _progress(
                f"[{n}] loaded: copy {loaded.copy_s:.0f} s, HNSW {loaded.hnsw_s:.1f} s, "
                f"GIN {loaded.gin_s:.1f} s" + (" (kept database)" if loaded.reused else "")
            )
            if args.explain:
                await explain(database, corpus, loaded.collection_ids)
            truth = exact_truth(corpus, args.queries)
            cases = await measure(
                database,
                corpus,
                loaded.collection_ids,
                truth,
                candidates=args.candidates,
                queries=args.queries,
            )
            bare = await bare_hnsw(database, corpus, truth[False], queries=args.queries)
            variants: dict[str, dict[str, Case]] = {}
            for again in range(2, args.passes + 1):
                variants[f"Hearth's, pass {again}"] = await measure(
                    database,
                    corpus,
                    loaded.collection_ids,
                    truth,
                    candidates=args.candidates,
                    queries=args.queries,
                )
            load_avg = _load_avg()
            for variant in args.variant:
                overrides = dict(item.split("=", 1) for item in variant.split(","))

                async def connect(conn: asyncpg.Connection, overrides: dict = overrides) -> None:
                    await on_connect(conn)  # which sets hnsw.ef_search by the table's size
                    for name, value in overrides.items():
                        await conn.execute(f"SET {name} = {_quote(value)}")

                tuned = Database(
                    database.url,
                    pool_size=2,
                    server_settings={**SESSION_SETTINGS, **overrides},
                    on_connect=connect,
                )
                try:
                    variants[variant] = await measure(
                        tuned,
                        corpus,
                        loaded.collection_ids,
                        truth,
                        candidates=args.candidates,
                        queries=args.queries,
                    )
                finally:
                    await tuned.close()
                _progress(f"[{n}] variant {variant} measured")
    _progress(f"[{n}] done in {time.perf_counter() - started:.0f} s")
    return SizeResult(n, corpus.clusters, loaded, cases, variants, bare, load_avg, server)


def _ms(case: Case) -> str:
    return f"{case.pct(50):.1f} / {case.pct(95):.1f}"


def _search_cells(c: dict[str, Case]) -> str:
    return (
        f"{_ms(c['hybrid'])} | {_ms(c['vector'])} | {_ms(c['text'])} | "
        f"{_ms(c['hybrid 1%'])} | {_ms(c['vector 1%'])} | "
        f"{min(c['hybrid 1%'].counts)} / {min(c['vector 1%'].counts)} | "
        f"{c['vector'].recall:.3f} | {c['vector 1%'].recall:.3f} | "
        f"{_ms(c['SELECT 1'])} |"
    )


SEARCH_HEADER = (
    "hybrid p50/p95 ms | vector p50/p95 | text p50/p95 | hybrid 1% p50/p95 | "
    "vector 1% p50/p95 | results 1% hybrid/vector (min) | recall@10 | recall@10 1% | "
    "SELECT 1 in a session p50/p95 |"
)


def report(args: argparse.Namespace, results: list[SizeResult]) -> None:
    print(f"\nmachine: {machine()}")
    for r in results:
        print(f"PostgreSQL ({r.size:,} chunks): {r.server}")
    print(
        f"search settings: {SESSION_SETTINGS}, k={K}, candidates={args.candidates}; "
        f"{args.queries} queries per case after {WARMUP} warm-up; noise {args.noise}"
    )
    print(
        "\n| chunks | clusters | COPY | HNSW build | HNSW size | GIN build | GIN size | table "
        "| postings | load avg |"
    )
    print("|" + "---|" * 10)
    for r in results:
        ld = r.load

        def took(seconds: float, ld: Load = ld) -> str:
            return "kept" if ld.reused else f"{seconds:.1f} s"

        print(
            f"| {r.size:,} | {r.clusters} | {took(ld.copy_s)} | {took(ld.hnsw_s)} | "
            f"{ld.hnsw_bytes / 2**20:.0f} MB | {took(ld.gin_s)} | {ld.gin_bytes / 2**20:.0f} MB "
            f"| {ld.table_bytes / 2**20:.0f} MB | {ld.postings_bytes / 2**20:.0f} MB "
            f"| {r.load_avg} |"
        )
    for r in results:
        if not r.load.reused:
            print(
                f"{r.size:,}: index build with maintenance_work_mem={r.load.maintenance_work_mem}"
                f", max_parallel_maintenance_workers={r.load.parallel_workers}"
                + (f"; notices: {r.load.notices}" if r.load.notices else "")
            )
    print("\n| chunks | settings | " + SEARCH_HEADER)
    print("|" + "---|" * 12)
    for r in results:
        print(f"| {r.size:,} | Hearth's | " + _search_cells(r.cases))
        for variant, cases in r.variants.items():
            print(f"| {r.size:,} | {variant} | " + _search_cells(cases))
    print(f"\nthe yardstick, a bare HNSW query at the smallest ef_search reaching {BARE_RECALL}:")
    for r in results:
        print(
            f"  {r.size:>9,}: p50/p95 {_ms(r.bare)} ms, recall@10 {r.bare.recall:.3f}, "
            f"{r.bare.label}"
        )
    print("\nfloors (Hearth's settings):")
    for r in results:
        c = r.cases
        p95 = c["hybrid"].pct(95)
        limit = FLOOR_P95_MS.get(r.size)
        checks = []
        if limit is not None:
            checks.append((f"hybrid p95 {p95:.1f} ms <= {limit:g} ms", p95 <= limit))
        recall = c["vector"].recall or 0.0
        checks.append((f"vector recall@10 {recall:.3f} >= 0.98", recall >= 0.98))
        if r.size == 100_000:
            fp95 = c["hybrid 1%"].pct(95)
            checks.append((f"hybrid 1% p95 {fp95:.1f} ms <= 10 ms", fp95 <= 10.0))
        full = min(c["hybrid 1%"].counts) == K and min(c["vector 1%"].counts) == K
        checks.append((f"1% filter returns k={K} for every query", full))
        for what, ok in checks:
            print(f"  {r.size:>9,}: {'PASS' if ok else 'FAIL'}  {what}")
        if r.size == 100_000:
            bare = r.bare.pct(95)
            print(
                f"  {r.size:>9,}: note  a bare HNSW query takes {bare:.1f} ms p95 here "
                f"({BARE_P95_MS} where the floors were set): hybrid p95 is {p95 / bare:.1f}x "
                f"it (floor {FLOOR_P95_MS[r.size] / BARE_P95_MS:.1f}x)"
            )


async def main_async(args: argparse.Namespace) -> None:
    _progress(f"machine: {machine()}; load average {_load_avg()}")
    results = [await run_size(args, n) for n in args.sizes]
    report(args, results)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200, help="Measured queries per case.")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="Keep each size's database under DIR/size-N and reuse it on the next run.",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=Settings.model_fields["rag_search_candidates"].default,
        help="Candidates per search passed to rank fusion (Hearth's default).",
    )
    parser.add_argument("--noise", choices=["powerlaw", "isotropic"], default="powerlaw")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=VALUE[,NAME=VALUE]",
        help="Also measure with these per-connection settings on top of Hearth's, e.g. "
        "hnsw.ef_search=200 or plan_cache_mode=force_custom_plan (repeatable).",
    )
    parser.add_argument(
        "--passes",
        type=int,
        default=1,
        help="Measure Hearth's settings this many times on the same server: the first pass "
        "after a start reads pages the buffer cache does not hold yet, later ones are warm. "
        "The floors are checked on the first.",
    )
    parser.add_argument("--explain", action="store_true", help="Print EXPLAIN ANALYZE plans.")
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
