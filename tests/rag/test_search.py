"""`search_chunks` on its own, against a real PostgreSQL: each mode, citations, the
permission filter inside the statement, and what it sends (one statement, the vector as
a binary float4 array, in the caller's transaction if there is one)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from hearth.accounts.principal import Principal
from hearth.db.migrate import upgrade
from hearth.db.session import Database
from hearth.rag.search import (
    CALL_SQL,
    PARAMETERS,
    SESSION_SETTINGS,
    ef_search_for,
    on_connect,
    search_chunks,
    search_parameters,
)
from tests._rows import STORED_FILE, add_collection_with_document
from tests.conftest import PostgresForTests

T = TypeVar("T")
DIMENSIONS = 384
ALICE, BOB, CAROL = Principal("alice"), Principal("bob"), Principal("carol", groups=("staff",))
WORDS = ["lighthouse", "marmalade", "glacier", "orchestra", "volcano", "saffron"]


def axis(i: int) -> list[float]:
    """A unit vector near axis i: chunk i is the nearest neighbour of axis(i)."""
    vector = [0.01] * DIMENSIONS
    vector[i] = 1.0
    return vector


def run(database_url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    async def go() -> T:
        db = Database(database_url, pool_size=1, on_connect=on_connect)
        try:
            return await work(db)
        finally:
            await db.close()

    return asyncio.run(go())


async def fill(db: Database) -> tuple[uuid.UUID, list[int]]:
    """Alice's collection: one document, a chunk per word (chunk i near axis i)."""
    collection, document = uuid.uuid4(), uuid.uuid4()
    async with db.session() as session, session.begin():
        await add_collection_with_document(
            session,
            collection,
            document,
            owner="alice",
            name="notes",
            filename="notes.md",
            title="Notes",
        )
        ids = []
        for i, word in enumerate(WORDS):
            meta = {"page": i + 1, "headings": ["Notes", word.title()], "start": i * 100}
            meta["end"] = meta["start"] + 50
            ids.append(
                (
                    await session.execute(
                        text(
                            "INSERT INTO document_chunk (collection_id, document_id, ordinal, "
                            "text, embedding, metadata) VALUES (:c, :d, :o, :t, "
                            "CAST(:e AS vector), CAST(:m AS jsonb)) RETURNING id"
                        ),
                        {
                            "c": collection,
                            "d": document,
                            "o": i,
                            "t": f"A passage about the {word}, number {i}.",
                            "e": "[" + ",".join(map(str, axis(i))) + "]",
                            "m": json.dumps(meta),
                        },
                    )
                ).scalar_one()
            )
    return collection, ids


async def search(
    db: Database, who: Principal, collections: list[uuid.UUID], query: str, vector: Any, mode: str
) -> list:
    async with db.session() as session:
        return await search_chunks(
            session, who, collections, query, vector, k=3, mode=mode, candidates=10
        )


@pytest.mark.parametrize("mode", ["hybrid", "vector", "text"])
def test_each_mode_finds_the_chunk_with_its_citation(database_url: str, mode: str) -> None:
    async def work(db: Database) -> tuple[list, list[int]]:
        collection, ids = await fill(db)
        return await search(db, ALICE, [collection], "glacier", axis(2), mode), ids

    hits, ids = run(database_url, work)
    best = hits[0]
    assert best.chunk_id == ids[2]
    assert (best.filename, best.title, best.page, best.page_end) == ("notes.md", "Notes", 3, None)
    assert (best.headings, best.start, best.end) == (["Notes", "Glacier"], 200, 250)
    assert best.text == "A passage about the glacier, number 2."
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(hits) == (1 if mode == "text" else 3)


def test_only_readable_collections_are_searched(database_url: str) -> None:
    async def work(db: Database) -> list[tuple[str, int]]:
        collection, _ = await fill(db)
        seen = []
        for who in (ALICE, BOB, CAROL):
            seen.append(
                (who.user_id, len(await search(db, who, [collection], "x", axis(0), "vector")))
            )
        async with db.session() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO collection_grant (collection_id, principal) "
                    "VALUES (:c, 'group:staff')"
                ),
                {"c": collection},
            )
        for who in (BOB, CAROL):
            seen.append(
                (who.user_id, len(await search(db, who, [collection], "x", axis(0), "hybrid")))
            )
        return seen

    assert run(database_url, work) == [
        ("alice", 3),
        ("bob", 0),
        ("carol", 0),
        ("bob", 0),
        ("carol", 3),
    ]


def test_full_text_postings_keep_to_readable_collections(database_url: str) -> None:
    """The BM25 postings carry each chunk's collection: Bob, searching by words that Alice's
    chunks hold, gets only his own, whether few chunks are permitted (the postings read by
    collection) or many (read by word, then filtered)."""

    async def work(db: Database) -> list[tuple[str, set[str]]]:
        alices, _ = await fill(db)
        bobs = await big_collection(db, "bob", 0.25)  # "random N": many chunks permitted
        async with db.session() as session, session.begin():
            await session.execute(
                text(
                    "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, "
                    "embedding) SELECT :c, id, 0, 'a glacier of his own', "
                    "array_fill(0.1, ARRAY[384])::vector FROM document WHERE collection_id = :c"
                ),
                {"c": bobs},
            )
            await session.execute(text("ANALYZE document_chunk"))
        seen = []
        for who, collections in ((BOB, [alices]), (BOB, [alices, bobs]), (ALICE, [alices, bobs])):
            hits = await search(db, who, collections, "glacier lighthouse", None, "text")
            seen.append((who.user_id, {h.text for h in hits}))
        return seen

    assert run(database_url, work) == [
        ("bob", set()),
        ("bob", {"a glacier of his own"}),
        (
            "alice",
            {"A passage about the glacier, number 2.", "A passage about the lighthouse, number 0."},
        ),
    ]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("red fox", ["the red fox ran", "a fox in red", "a red apple"]),  # any word; more first
        ('"red fox"', ["the red fox ran"]),  # a phrase: the words in this order
        ("red -apple", ["a fox in red", "the red fox ran"]),  # an exclusion: all the others
        ("apple", ["a red apple"]),
        ("the of", []),  # stop words only
    ],
)
def test_full_text_search_syntax(database_url: str, query: str, found: list[str]) -> None:
    """Phrases and exclusions need word positions, which the postings do not hold: such
    queries are checked against the chunks' tsvectors as well."""

    async def work(db: Database) -> list[str]:
        collection, document = uuid.uuid4(), uuid.uuid4()
        async with db.session() as session, session.begin():
            await add_collection_with_document(
                session, collection, document, owner="alice", filename="f.md", title="F"
            )
            await session.execute(
                text(
                    "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, "
                    "embedding) SELECT :c, :d, o, t, array_fill(0.1, ARRAY[384])::vector "
                    "FROM unnest(CAST(:t AS text[])) WITH ORDINALITY AS x(t, o)"
                ),
                {
                    "c": collection,
                    "d": document,
                    "t": ["the red fox ran", "a red apple", "a fox in red"],
                },
            )
        hits = await search(db, ALICE, [collection], query, None, "text")
        return [h.text for h in hits]

    hits = run(database_url, work)
    assert sorted(hits) == sorted(found)
    if query == "red fox":
        assert hits[-1] == "a red apple"


def test_one_statement_and_no_transaction_of_its_own(database_url: str) -> None:
    async def work(db: Database) -> list[str]:
        collection, _ = await fill(db)
        # The first run on a connection also lets asyncpg look up the parameter types.
        await search(db, ALICE, [collection], "glacier", axis(2), "hybrid")
        sent: list[str] = []
        async with db.session() as session:
            raw = (await (await session.connection()).get_raw_connection()).driver_connection
            raw.add_query_logger(lambda record: sent.append(record.query))
        counted = db.statements
        await search(db, ALICE, [collection], "glacier", axis(2), "hybrid")
        assert db.statements == counted + 1  # still counted for hearth_db_statements_total
        return sent

    assert run(database_url, work) == [CALL_SQL]


def test_it_sees_the_callers_uncommitted_chunks(database_url: str) -> None:
    async def work(db: Database) -> tuple[int, int]:
        collection, ids = await fill(db)
        async with db.session() as session, session.begin():
            await session.execute(text("DELETE FROM document_chunk WHERE id = :i"), {"i": ids[2]})
            inside = await search_chunks(
                session, ALICE, [collection], "glacier", axis(2), k=6, mode="hybrid", candidates=10
            )
            await session.rollback()
        after = await search(db, ALICE, [collection], "glacier", axis(2), "text")
        return len(inside), after[0].chunk_id == ids[2]

    assert run(database_url, work) == (5, True)


def test_parameters_match_the_statement() -> None:
    for mode in ("hybrid", "vector", "text"):
        arguments = search_parameters(
            ALICE,
            [uuid.uuid4()],
            "q",
            axis(0),
            k=5,
            mode=mode,  # type: ignore[arg-type]
            candidates=2,
        )
        assert len(arguments) == len(PARAMETERS)
        assert f"${len(arguments)})" in CALL_SQL and f"${len(arguments) + 1}" not in CALL_SQL
        values = dict(zip(PARAMETERS, arguments, strict=True))
        assert values["mode"] == mode
        assert values["candidates"] == 5  # never fewer candidates than results
        # a float4[] parameter, cast by the server: no text literal of 384 numbers
        assert values["vector"] == (None if mode == "text" else axis(0))


async def scatter(db: Database, collection: uuid.UUID, chunks: int, seed: float) -> None:
    """`chunks` random vectors in a new document of `collection`, and its chunk count."""
    document = uuid.uuid4()
    async with db.session() as session, session.begin():
        await session.execute(text("SELECT setseed(:s)"), {"s": seed})
        await session.execute(
            text(
                "INSERT INTO document (id, collection_id, file_sha256, filename, title, chunks) "
                "VALUES (:d, :c, :s, 'random.txt', 'Random', :n)"
            ),
            {"d": document, "c": collection, "s": STORED_FILE, "n": chunks},
        )
        await session.execute(
            text(
                "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, "
                "embedding, metadata) "
                "SELECT :c, :d, g, 'random ' || g, "
                "  (SELECT array_agg(random() - 0.5) FROM generate_series(1, 384) WHERE g > 0)"
                "  ::vector, '{}'::jsonb "
                "FROM generate_series(1, :n) g"
            ),
            {"c": collection, "d": document, "n": chunks},
        )


async def big_collection(db: Database, owner: str, seed: float) -> uuid.UUID:
    """A new collection of `owner` holding 3,000 random chunks (`scatter`)."""
    collection = uuid.uuid4()
    async with db.session() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO collection (id, name, owner_id, embedding_model) "
                "VALUES (:c, 'big', :o, 'test-384')"
            ),
            {"c": collection, "o": owner},
        )
    await scatter(db, collection, 3000, seed)
    return collection


def test_few_permitted_chunks_are_scanned_exactly(database_url: str) -> None:
    """A small collection in a large table: exact distances over its chunks (the filtered
    HNSW walk could stop short); the whole table: the index."""

    async def work(db: Database) -> tuple[list[int], list[int], list, list]:
        small, _ = await fill(db)
        async with db.session() as session, session.begin():
            await session.execute(
                text("UPDATE document SET chunks = :n WHERE collection_id = :c"),
                {"n": len(WORDS), "c": small},
            )
        big = await big_collection(db, "alice", 0.5)
        async with db.session() as session, session.begin():
            await session.execute(text("ANALYZE document_chunk"))
        hnsw_scans = []
        for collections in ([small], [big, small]):
            async with db.session() as session, session.begin():
                # Index scans this transaction made (the backend's own, so far unreported)
                found = await search_chunks(
                    session, ALICE, collections, "", axis(4), k=3, mode="vector", candidates=10
                )
                scans = await session.execute(
                    text(
                        "SELECT pg_stat_get_xact_numscans("
                        "'ix_document_chunk_embedding_half'::regclass)"
                    )
                )
                hnsw_scans.append(scans.scalar_one())
                assert len(found) == 3
        found_small = await search(db, ALICE, [small], "", axis(4), "vector")
        found_both = await search(db, ALICE, [big, small], "", axis(4), "vector")
        return hnsw_scans[0], hnsw_scans[1], found_small, found_both

    small_scans, big_scans, found_small, found_both = run(database_url, work)
    assert small_scans == 0  # exact distances over the small collection's chunks
    assert big_scans == 1  # the HNSW index over the whole table
    assert found_small[0].text == "A passage about the volcano, number 4."
    assert found_both[0].text == "A passage about the volcano, number 4."


def test_larger_tables_get_a_longer_hnsw_candidate_list(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = (10_000, 100_000, 1_000_000, 5_000_000)
    assert [ef_search_for(n) for n in sizes] == [100, 100, 200, 300]

    async def ef_search(connect_hook: bool) -> str:
        db = Database(
            database_url,
            pool_size=1,
            server_settings=SESSION_SETTINGS,
            on_connect=on_connect if connect_hook else None,
        )
        try:
            async with db.session() as session:
                return (await session.execute(text("SHOW hnsw.ef_search"))).scalar_one()
        finally:
            await db.close()

    assert asyncio.run(ef_search(True)) == "100"  # from the statistics: no rows yet
    monkeypatch.setattr("hearth.rag.search.EF_SEARCH_FROM", ((0, 250),))
    assert asyncio.run(ef_search(True)) == "250"
    assert asyncio.run(ef_search(False)) == "100"  # the session's value, without the hook


def test_a_connection_opened_before_the_migrations_searches_after_them(
    postgres: PostgresForTests,
) -> None:
    """`hearth up` on a new data directory: the pool's first connection is prepared for
    searching while the database is still empty (no tables, no `vector` type), and the
    migrations then run on it."""
    name = f"t_empty_{uuid.uuid4().hex[:8]}"
    asyncio.run(postgres.execute(f"CREATE DATABASE {name}"))

    async def work(db: Database) -> str:
        await upgrade(db)
        collection, _ = await fill(db)
        found = await search(db, ALICE, [collection], "glacier", axis(2), "hybrid")
        return found[0].text

    assert run(postgres.url(name), work) == "A passage about the glacier, number 2."
