"""Retrieval embeds through the gateway: with the embedding model served by two
deployments, one of them down, documents are still ingested and searched (failover), and
the embeddings are counted in usage like any other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from hearth.accounts.principal import LOCAL_USER
from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.rag.schemas import CollectionCreate
from hearth.server import create_app
from tests._server import Running, free_port, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream

EMBED = ModelConfig(name="remote-embed", upstream="fake-embed", type="embedding")


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(embedding_dimensions=384) as fake:
        yield fake


@pytest.fixture(scope="module")
def hearth_remote(upstream: FakeOpenAIUpstream, postgres, tmp_path_factory) -> Iterator[Running]:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("remote-embedder"),
        rag_embedding_model="remote-embed",
        # The dead deployment is declared first, so it is tried and fails; and it weighs
        # more, so the balancer keeps picking it until its breaker opens.
        engines=[
            OpenAIEngineConfig(
                name="dead",
                base_url=dead,
                connect_timeout=0.5,
                models=[EMBED.model_copy(update={"weight": 10})],
            ),
            OpenAIEngineConfig(name="alive", base_url=upstream.base_url, models=[EMBED]),
        ],
    )
    with running(create_app(settings)) as server:
        yield server


def test_documents_are_embedded_and_searched_through_failover(
    hearth_remote: Running, upstream: FakeOpenAIUpstream
) -> None:
    documents = hearth_remote.app.state.documents

    async def ingest_and_search() -> list:
        collection = await documents.create_collection(LOCAL_USER, CollectionCreate(name="kb"))
        document, _ = await documents.add_document(
            LOCAL_USER, collection.id, "notes.txt", b"The lighthouse keeper polished the lens."
        )
        deadline = time.monotonic() + 30
        while (await documents.get_document(LOCAL_USER, document.id)).status != "ready":
            assert time.monotonic() < deadline, "the document was never ingested"
            await asyncio.sleep(0.1)
        return await documents.search(
            LOCAL_USER, [collection.id], "The lighthouse keeper polished the lens.", mode="vector"
        )

    found = hearth_remote.call(ingest_and_search())

    assert [c.filename for c in found] == ["notes.txt"]
    embedded = [r.json["input"] for r in upstream.requests if r.path == "/v1/embeddings"]
    assert ["The lighthouse keeper polished the lens."] in embedded  # the chunk and the query
    usage = hearth_remote.call(_usage(hearth_remote))
    assert ("remote-embed", "alive", "documents", 200) in usage
    assert ("remote-embed", "alive", "search", 200) in usage


async def _usage(hearth: Running) -> set[tuple]:
    await hearth.app.state.gateway.usage.flush()
    async with hearth.app.state.database.session() as session:
        rows = await session.execute(
            text("SELECT model, deployment, endpoint, status FROM usage_record")
        )
        return {tuple(row) for row in rows}
