"""The full-text side's BM25 against a real PostgreSQL: the per-collection lexeme counts and
the postings the triggers keep (migrations 0008, 0009; weighted by label since 0014), that
a rare query word outweighs a common one, that counts come only from the collections
searched, and that concurrent writers do not deadlock."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncSession

from hearth.db.migrate import alembic_config
from hearth.db.session import Database
from tests._rows import add_collection_with_document
from tests.conftest import PostgresForTests
from tests.rag.test_search import ALICE, BOB, run, search

# Rows where what the triggers keep differs from a recount of the chunks (both ways): the
# lexeme counts and lengths (migrations 0008, 0009), and the BM25 postings (0009); and
# postings whose chunk is gone, in any collection.
MISMATCHES = """
WITH chunks AS (
    SELECT ch.*, c.number FROM document_chunk ch JOIN collection c ON c.id = ch.collection_id
    WHERE ch.collection_id = ANY(CAST(:collections AS uuid[]))
),
weighted AS (  -- each position counts by its label: title (A) 3, headings (B) 2, body 1
    SELECT id, collection_id, number, t.lexeme,
           (SELECT sum(CASE w WHEN 'A' THEN 3 WHEN 'B' THEN 2 ELSE 1 END)
            FROM unnest(t.weights) w) AS tf
    FROM chunks, unnest(tsv) t
),
recount AS (
    SELECT collection_id, l AS lexeme, count(*) AS chunks
    FROM chunks, unnest(tsvector_to_array(tsv) || ''::text) l
    GROUP BY 1, 2
    UNION ALL
    SELECT collection_id, ' ', sum(tf) FROM weighted GROUP BY 1
),
kept AS (
    SELECT * FROM collection_lexeme WHERE collection_id = ANY(CAST(:collections AS uuid[]))
),
postings AS (
    SELECT id AS chunk_id, number AS collection, lexeme, tf,
           sum(tf) OVER (PARTITION BY id) AS length
    FROM weighted
),
kept_postings AS (
    SELECT p.* FROM chunk_term p JOIN collection c ON c.number = p.collection
    WHERE c.id = ANY(CAST(:collections AS uuid[]))
)
SELECT 'count', collection_id::text, lexeme, recount.chunks, kept.chunks
FROM recount FULL JOIN kept USING (collection_id, lexeme)
WHERE recount.chunks IS DISTINCT FROM kept.chunks
UNION ALL
SELECT 'posting', chunk_id::text, lexeme, postings.tf * 100000 + postings.length,
       kept_postings.tf * 100000 + kept_postings.length
FROM postings FULL JOIN kept_postings USING (chunk_id, collection, lexeme)
WHERE (postings.tf, postings.length) IS DISTINCT FROM (kept_postings.tf, kept_postings.length)
UNION ALL
SELECT 'orphan', p.chunk_id::text, p.lexeme, NULL, NULL FROM chunk_term p
WHERE NOT EXISTS (SELECT FROM document_chunk ch WHERE ch.id = p.chunk_id)"""


async def add_collection(db: Database, owner: str, texts: list[str]) -> uuid.UUID:
    """A collection of `owner` with one document holding a chunk per text."""
    collection, document = uuid.uuid4(), uuid.uuid4()
    async with db.session() as session, session.begin():
        await add_collection_with_document(
            session, collection, document, owner=owner, filename="doc.md", title="Doc"
        )
        await add_chunks(session, collection, document, texts)
    return collection


async def add_chunks(
    session: AsyncSession, collection: uuid.UUID, document: uuid.UUID, texts: list[str]
) -> None:
    # One statement, as ingestion inserts a batch.
    await session.execute(
        text(
            "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, embedding) "
            "SELECT :c, :d, o, t, array_fill(0.1, ARRAY[384])::vector "
            "FROM unnest(CAST(:t AS text[])) WITH ORDINALITY AS x(t, o)"
        ),
        {"c": collection, "d": document, "t": texts},
    )


async def mismatches(db: Database, *collections: uuid.UUID) -> list:
    async with db.session() as session:
        rows = await session.execute(text(MISMATCHES), {"collections": list(collections)})
        return list(rows)


async def counts(db: Database, collection: uuid.UUID) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.execute(
            text("SELECT lexeme, chunks FROM collection_lexeme WHERE collection_id = :c"),
            {"c": collection},
        )
        return {lexeme: chunks for lexeme, chunks in rows}


def reports() -> list[str]:
    """Nine chunks holding the common "report", one the rare "zeppelin". The first says
    "report" three times, which is what plain ts_rank ranks first for "zeppelin report"
    (the zeppelin chunk is even a word shorter, which length normalisation favours)."""
    common = [f"report w{i}a w{i}b w{i}c w{i}d" for i in range(8)]
    return ["report report report harbor ivory", *common, "zeppelin moored beside ivory fjord"]


def test_counts_follow_inserts_updates_and_deletes(database_url: str) -> None:
    async def work(db: Database) -> None:
        mine = await add_collection(db, "alice", ["the glacier melted", "a glacier and a lake"])
        other = await add_collection(db, "bob", ["lake shore"])
        kept = await counts(db, mine)
        assert kept["glacier"] == 2 and kept["lake"] == 1 and kept[""] == 2
        assert (await counts(db, other))["lake"] == 1  # each collection its own
        async with db.session() as session, session.begin():
            document = (
                await session.execute(
                    text("SELECT document_id FROM document_chunk WHERE collection_id = :c"),
                    {"c": mine},
                )
            ).scalar()
            # what re-indexing does: the document's chunks replaced in one transaction
            await session.execute(
                text("DELETE FROM document_chunk WHERE document_id = :d"), {"d": document}
            )
            await add_chunks(session, mine, document, ["volcanic lake", "a lake", "ash"])
        assert await mismatches(db, mine, other) == []
        kept = await counts(db, mine)
        assert "glacier" not in kept and kept["lake"] == 2 and kept[""] == 3  # no zero rows
        async with db.session() as session, session.begin():
            await session.execute(
                text("UPDATE document_chunk SET text = 'glacier' WHERE text = 'ash'")
            )
        assert await mismatches(db, mine) == [] and (await counts(db, mine))["glacier"] == 1
        async with db.session() as session, session.begin():  # a document's deletion
            await session.execute(text("DELETE FROM document WHERE id = :d"), {"d": document})
        assert await counts(db, mine) == {}
        async with db.session() as session, session.begin():
            await session.execute(text("DELETE FROM collection WHERE id = :c"), {"c": other})
        assert await counts(db, other) == {}

    run(database_url, work)


def test_a_rare_word_outweighs_a_common_one(database_url: str) -> None:
    async def work(db: Database) -> tuple[str, list[str]]:
        collection = await add_collection(db, "alice", reports())
        async with db.session() as session:
            plain = (
                await session.execute(
                    text(
                        "SELECT text FROM document_chunk, "
                        "to_tsquery('english', 'zeppelin | report') q "
                        "WHERE tsv @@ q ORDER BY ts_rank(tsv, q, 1) DESC LIMIT 1"
                    )
                )
            ).scalar_one()
        hits = await search(db, ALICE, [collection], "zeppelin report", None, "text")
        return plain, [h.text for h in hits]

    plain, found = run(database_url, work)
    assert plain == "report report report harbor ivory"  # what ts_rank alone ranks first
    assert found[0] == "zeppelin moored beside ivory fjord"


def test_unreadable_collections_do_not_change_the_ranking(database_url: str) -> None:
    """Bob's collection makes "zeppelin" common and "report" rare; counted with Alice's,
    it would reorder her results (and tell her something about his texts)."""

    async def work(db: Database) -> tuple[list, list, set]:
        collection = await add_collection(db, "alice", reports())

        async def alice() -> list:
            hits = await search(db, ALICE, [collection], "zeppelin report", None, "text")
            return [(h.chunk_id, h.score) for h in hits]

        before = await alice()
        bobs = await add_collection(db, "bob", [f"zeppelin w{i} hangar" for i in range(40)])
        after = await alice()
        both = await search(db, BOB, [collection, bobs], "zeppelin report", None, "text")
        return before, after, {h.collection_id == bobs for h in both}

    before, after, bobs_own = run(database_url, work)
    assert after == before and len(before) == 3
    assert bobs_own == {True}  # and Bob, searching both, sees only his own


def test_concurrent_reindexing_does_not_deadlock(database_url: str) -> None:
    """Two transactions each replace a document's chunks in the same collection, the
    second deleting while the first has not inserted yet: old and new chunks share
    lexemes in crossed order, which deadlocks unless the counts are written in turn."""

    async def work(db: Database) -> list:
        collection = await add_collection(db, "alice", ["alpha beta"])
        async with db.session() as session, session.begin():
            other = uuid.uuid4()
            await session.execute(
                text("INSERT INTO stored_file (sha256, size) VALUES (:s, 1)"), {"s": "3" * 64}
            )
            await session.execute(
                text(
                    "INSERT INTO document (id, collection_id, file_sha256, filename) "
                    "VALUES (:d, :c, :s, 'b.md')"
                ),
                {"d": other, "c": collection, "s": "3" * 64},
            )
            await add_chunks(session, collection, other, ["gamma delta"])
            first = (
                await session.execute(
                    text("SELECT document_id FROM document_chunk WHERE text = 'alpha beta'")
                )
            ).scalar_one()
        url = db.url.replace("postgresql+asyncpg://", "postgresql://", 1)
        one, two = await asyncpg.connect(url), await asyncpg.connect(url)
        insert = (
            "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, embedding) "
            "VALUES ($1, $2, 0, $3, array_fill(0.1, ARRAY[384])::vector)"
        )
        try:
            await one.execute("BEGIN")
            await two.execute("BEGIN")
            await one.execute("DELETE FROM document_chunk WHERE document_id = $1", first)
            second = asyncio.create_task(
                two.execute("DELETE FROM document_chunk WHERE document_id = $1", other)
            )
            await asyncio.sleep(0.5)  # the second delete is under way (or waiting)
            await one.execute(insert, collection, first, "delta gamma alpha")
            await one.execute("COMMIT")
            await second
            await two.execute(insert, collection, other, "beta alpha delta")
            await two.execute("COMMIT")
        finally:
            await one.close()
            await two.close()
        return await mismatches(db, collection)

    assert run(database_url, work) == []


def test_the_migration_indexes_existing_chunks_and_goes_back(postgres: PostgresForTests) -> None:
    """Chunks ingested before migration 0009 get their postings and lengths when it runs;
    its downgrade leaves 0008's schema, and upgrading again rebuilds them the same."""
    name = f"t_m9_{uuid.uuid4().hex[:8]}"
    asyncio.run(postgres.execute(f"CREATE DATABASE {name}"))

    def migrate(connection: Connection, how: str, revision: str) -> None:
        getattr(command, how)(alembic_config(connection), revision)

    async def step(db: Database, how: str, revision: str) -> None:
        async with db.engine.connect() as conn:
            await conn.run_sync(migrate, how, revision)
            await conn.commit()

    async def work(db: Database) -> list:
        await step(db, "upgrade", "0008")
        collection = await add_collection(db, "alice", reports())
        await step(db, "upgrade", "head")
        seen = [await mismatches(db, collection)]
        await db.close()  # connections define the search function for the schema they see
        hits = await search(db, ALICE, [collection], "zeppelin report", None, "text")
        seen.append(hits[0].text)
        await step(db, "downgrade", "0008")
        async with db.session() as session:
            seen.append(
                (
                    await session.execute(
                        text("SELECT count(*) FROM collection_lexeme WHERE lexeme = ' '")
                    )
                ).scalar_one()
            )
        await step(db, "upgrade", "head")
        seen.append(await mismatches(db, collection))
        return seen

    assert run(postgres.url(name), work) == [[], "zeppelin moored beside ivory fjord", 0, []]
