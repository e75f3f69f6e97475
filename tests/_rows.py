"""Rows the retrieval tests insert directly, below the documents service: a collection and
one document in it, ready for chunks."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

STORED_FILE = "0" * 64  # the one stored file every test document points at


async def add_collection_with_document(
    conn: Any,  # an AsyncSession or AsyncConnection, in a transaction
    collection: uuid.UUID,
    document: uuid.UUID,
    *,
    owner: str,
    name: str | None = None,
    filename: str = "doc.md",
    title: str | None = None,
) -> None:
    sha256 = STORED_FILE
    await conn.execute(
        text(
            "INSERT INTO collection (id, name, owner_id, embedding_model) "
            "VALUES (:c, :n, :o, 'test-384')"
        ),
        {"c": collection, "n": name or f"c-{collection.hex[:8]}", "o": owner},
    )
    await conn.execute(
        text("INSERT INTO stored_file (sha256, size) VALUES (:s, 1) ON CONFLICT DO NOTHING"),
        {"s": sha256},
    )
    await conn.execute(
        text(
            "INSERT INTO document (id, collection_id, file_sha256, filename, title) "
            "VALUES (:d, :c, :s, :f, :t)"
        ),
        {"d": document, "c": collection, "s": sha256, "f": filename, "t": title},
    )
