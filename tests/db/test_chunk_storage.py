"""Chunk vectors live in the row (migration 0007), for new rows and for rows that were
in TOAST before the migration."""

from __future__ import annotations

import asyncio
import uuid

from alembic import command
from sqlalchemy import Connection, text

from hearth.db.migrate import alembic_config, upgrade
from hearth.db.session import Database
from tests._rows import add_collection_with_document

DIMENSIONS = 384


def _vector(seed: int) -> str:
    values = (((seed * 31 + i) % 97) / 97 - 0.5 for i in range(DIMENSIONS))
    return "[" + ",".join(f"{x:.6f}" for x in values) + "]"


async def _insert_chunks(db: Database, count: int, text_chars: int) -> None:
    collection, document = uuid.uuid4(), uuid.uuid4()
    async with db.engine.begin() as conn:
        await add_collection_with_document(
            conn, collection, document, owner="tester", name="storage", filename="storage.txt"
        )
        words = " ".join(f"word{i}" for i in range(text_chars // 8))[:text_chars]
        await conn.execute(
            text(
                "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, embedding) "
                "VALUES (:c, :d, :o, :t, CAST(:e AS vector))"
            ),
            [
                {"c": collection, "d": document, "o": i, "t": words, "e": _vector(i)}
                for i in range(count)
            ],
        )


async def _placement(db: Database) -> tuple[int, int, int]:
    """Chunks, and how many have their vector, and their tsvector, out of line in TOAST."""
    async with db.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT count(*), "
                    "count(*) FILTER (WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL), "
                    "count(*) FILTER (WHERE pg_column_toast_chunk_id(tsv) IS NOT NULL) "
                    "FROM document_chunk"
                )
            )
        ).one()
        return row[0], row[1], row[2]


def test_vector_storage_is_main_with_a_larger_toast_target(database_url: str) -> None:
    async def check() -> tuple[str, list[str]]:
        db = Database(database_url, pool_size=1)
        try:
            async with db.engine.connect() as conn:
                storage = (
                    await conn.execute(
                        text(
                            "SELECT attstorage::text FROM pg_attribute WHERE attrelid = "
                            "'document_chunk'::regclass AND attname = 'embedding'"
                        )
                    )
                ).scalar_one()
                options = (
                    await conn.execute(
                        text("SELECT reloptions FROM pg_class WHERE relname = 'document_chunk'")
                    )
                ).scalar_one()
            return storage, options
        finally:
            await db.close()

    storage, options = asyncio.run(check())
    assert storage == "m"  # MAIN: pgvector's own default is EXTERNAL
    assert "toast_tuple_target=4080" in options


def test_new_chunks_keep_vector_and_text_in_the_row(database_url: str) -> None:
    async def run() -> tuple[int, int, int]:
        db = Database(database_url, pool_size=1)
        try:
            # A chunk of ~1,000 characters (192 tokens) with its tsvector and 1,544-byte
            # vector: over the default 2 kB TOAST threshold, under the 4,080-byte target.
            await _insert_chunks(db, 20, 1000)
            return await _placement(db)
        finally:
            await db.close()

    assert asyncio.run(run()) == (20, 0, 0)


def test_very_long_chunks_move_their_text_not_their_vector(database_url: str) -> None:
    async def run() -> tuple[int, int, int]:
        db = Database(database_url, pool_size=1)
        try:
            await _insert_chunks(db, 5, 20_000)
            return await _placement(db)
        finally:
            await db.close()

    chunks, vectors_out, _ = asyncio.run(run())
    assert (chunks, vectors_out) == (5, 0)


def test_the_migration_moves_vectors_stored_before_it(database_url: str) -> None:
    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), "0006")

    async def run() -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        db = Database(database_url, pool_size=1)
        try:
            async with db.engine.connect() as conn:
                await conn.run_sync(downgrade)
                await conn.commit()
            await _insert_chunks(db, 30, 1000)
            before = await _placement(db)
            await upgrade(db)
            return before, await _placement(db)
        finally:
            await db.close()

    before, after = asyncio.run(run())
    assert before[:2] == (30, 30)  # EXTERNAL: every vector in TOAST
    assert after == (30, 0, 0)
