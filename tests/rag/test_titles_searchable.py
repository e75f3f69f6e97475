"""Titles and section headings in the full-text side (migration 0014), against a real
PostgreSQL: a title's words are found though the text never says them and outweigh a
passing mention; a first heading that repeats the title is not counted twice; `explain`
gives each side's rank as that side alone ranks; and the migration re-indexes chunks
stored before it from their rows, vectors untouched, and goes back."""

from __future__ import annotations

import asyncio
import json
import uuid

from alembic import command
from sqlalchemy import Connection, text

from hearth.db.migrate import alembic_config
from hearth.db.session import Database
from hearth.rag.search import search_chunks
from tests._rows import add_collection_with_document
from tests.conftest import PostgresForTests
from tests.rag.test_search import ALICE, axis, run
from tests.rag.test_text_idf import mismatches

INSERT = (
    "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, embedding, metadata) "
    "VALUES (:c, :d, :o, :t, CAST(:e AS vector), CAST(:m AS jsonb)) RETURNING id"
)


async def add_document(
    db: Database,
    collection: uuid.UUID,
    title: str,
    chunks: list[tuple[list[str], str]],  # (headings, text)
    *,
    new_collection: bool = False,
    with_title: bool = True,  # as ingestion writes it since 0014; before, no title
) -> list[int]:
    document = uuid.uuid4()
    async with db.session() as session, session.begin():
        if new_collection:
            await add_collection_with_document(
                session, collection, document, owner="alice", title=title
            )
        else:
            sha256 = document.hex * 2  # a file of its own: one document per file and collection
            await session.execute(
                text("INSERT INTO stored_file (sha256, size) VALUES (:s, 1)"), {"s": sha256}
            )
            await session.execute(
                text(
                    "INSERT INTO document (id, collection_id, file_sha256, filename, title) "
                    "VALUES (:d, :c, :s, :f, :t)"
                ),
                {"d": document, "c": collection, "s": sha256, "f": f"{title}.md", "t": title},
            )
        ids = []
        for i, (headings, body) in enumerate(chunks):
            meta = {"headings": headings, **({"title": title} if with_title else {})}
            row = await session.execute(
                text(INSERT),
                {
                    "c": collection,
                    "d": document,
                    "o": i,
                    "t": body,
                    "e": str(axis(len(ids) + 10 * (len(title) % 7))),
                    "m": json.dumps(meta),
                },
            )
            ids.append(row.scalar_one())
    return ids


async def hits(db: Database, collection: uuid.UUID, query: str, mode: str = "text") -> list:
    async with db.session() as session:
        return await search_chunks(
            session,
            ALICE,
            [collection],
            query,
            axis(0),
            k=10,
            mode=mode,
            candidates=10,
            explain=True,
        )


def test_title_words_are_found_and_outweigh_a_mention(database_url: str) -> None:
    async def work(db: Database) -> tuple:
        collection = uuid.uuid4()
        (play,) = await add_document(
            db,
            collection,
            "The Laramie Project",
            [(["The Laramie Project"], "A play by Moises Kaufman about a murder in Wyoming.")],
            new_collection=True,
        )
        (mention,) = await add_document(
            db, collection, "Travel notes", [([], "We drove past Laramie on the way to Denver.")]
        )
        (section,) = await add_document(
            db, collection, "Guide", [(["Guide", "Installing"], "Run make up on a laptop.")]
        )
        found = [h.chunk_id for h in await hits(db, collection, "Laramie")]
        project = [h.chunk_id for h in await hits(db, collection, "The Laramie Project")]
        installing = [h.chunk_id for h in await hits(db, collection, "installing")]
        async with db.session() as session:
            tf = dict(
                (
                    await session.execute(
                        text(
                            "SELECT lexeme, tf FROM chunk_term WHERE chunk_id = :i "
                            "AND lexeme IN ('larami', 'play', 'project')"
                        ),
                        {"i": play},
                    )
                ).all()
            )
        kept = await mismatches(db, collection)
        return (found, [play, mention]), (project[0], play), (installing, [section]), tf, kept

    found, project, installing, tf, kept = run(database_url, work)
    assert found[0] == found[1]  # the title ranks above a passing mention in a body
    assert project[0] == project[1]
    assert installing[0] == installing[1]  # a heading is searchable (only that chunk has it)
    # The title counts 3, its repeat as the first heading not again; a body word 1.
    assert tf == {"larami": 3, "project": 3, "play": 1}
    assert kept == []  # the triggers' postings and counts equal a recount


def test_explain_gives_each_sides_own_rank(database_url: str) -> None:
    async def work(db: Database) -> tuple:
        collection = uuid.uuid4()
        await add_document(
            db,
            collection,
            "Lighthouses",
            [
                ([], "The keeper polished the lens of the lighthouse."),
                ([], "A lighthouse on a rock, and another lighthouse beyond it."),
                ([], "Bread rises when the dough is kneaded."),
            ],
            new_collection=True,
        )
        fused = await hits(db, collection, "lighthouse keeper", "hybrid")
        vector = [h.chunk_id for h in await hits(db, collection, "lighthouse keeper", "vector")]
        textual = [h.chunk_id for h in await hits(db, collection, "lighthouse keeper", "text")]
        return fused, vector, textual

    fused, vector, textual = run(database_url, work)
    assert len(fused) == 3
    for hit in fused:
        why = hit.explain
        assert why.vector_rank == vector.index(hit.chunk_id) + 1
        assert why.text_rank == (
            textual.index(hit.chunk_id) + 1 if hit.chunk_id in textual else None
        )
        assert (why.relevance is None) == (why.text_rank is None)
        assert why.similarity is not None and why.score == hit.score
    assert [h.score for h in fused] == sorted((h.score for h in fused), reverse=True)


def test_the_migration_reindexes_stored_chunks_and_goes_back(postgres: PostgresForTests) -> None:
    name = f"t_m14_{uuid.uuid4().hex[:8]}"
    asyncio.run(postgres.execute(f"CREATE DATABASE {name}"))

    def migrate(connection: Connection, how: str, revision: str) -> None:
        getattr(command, how)(alembic_config(connection), revision)

    async def step(db: Database, how: str, revision: str) -> None:
        await db.close()  # connections define the search function for the schema they see
        async with db.engine.connect() as conn:
            await conn.run_sync(migrate, how, revision)
            await conn.commit()

    async def state(db: Database, collection: uuid.UUID) -> tuple:
        async with db.session() as session:
            row = (
                await session.execute(
                    text("SELECT metadata ->> 'title', embedding::text FROM document_chunk")
                )
            ).one()
        found = [h.text for h in await hits(db, collection, "Skerryvore")]
        return row[0], row[1], found, await mismatches(db, collection)

    async def work(db: Database) -> list:
        await step(db, "upgrade", "0013")
        collection = uuid.uuid4()
        await add_document(
            db,
            collection,
            "Skerryvore",
            [([], "The keeper polished the great lens every evening.")],
            new_collection=True,
            with_title=False,
        )
        seen = [await state(db, collection)]
        await step(db, "upgrade", "head")
        seen.append(await state(db, collection))
        await step(db, "downgrade", "0013")
        seen.append(await state(db, collection))
        return seen

    before, after, back = run(postgres.url(name), work)
    body = "The keeper polished the great lens every evening."
    assert before[0] is None and before[2] == [] and before[3] == []
    assert after[0] == "Skerryvore" and after[2] == [body] and after[3] == []
    assert after[1] == before[1]  # the vector is the one stored: nothing re-embedded
    assert back[0] is None and back[2] == [] and back[3] == [] and back[1] == before[1]
