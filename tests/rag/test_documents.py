"""Collections, uploads, ingestion jobs and search, against a running Hearth: real
PostgreSQL + pgvector, the real embedder, the real job queue and worker."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from sqlalchemy import text

from hearth.accounts.principal import Principal
from hearth.accounts.users import UserPublic
from hearth.errors import Forbidden, NotFound
from hearth.rag.schemas import CollectionCreate, GrantCreate
from hearth.rag.service import Documents
from tests._accounts import api_key, create_user
from tests._server import Running
from tests.rag.test_parse_limits import MAX_GROWTH_MB, MB, PeakMemory, padded
from tests.rag.test_parsers import make_docx
from tests.rag.test_text_idf import MISMATCHES

GUIDE = b"""# Hearth guide

Hearth runs large language models for an organisation.

## Installing

Run make up on a laptop. The embedded PostgreSQL starts by itself.

## Lighthouses

The keeper of the Skerryvore lighthouse polished the great lens every evening.
"""

ALICE, BOB, CAROL = Principal("alice"), Principal("bob"), Principal("carol", groups=("staff",))


@pytest.fixture(scope="module")
def owner(hearth: Running) -> UserPublic:
    return create_user(hearth)


@pytest.fixture(scope="module")
def api(base_url: str, hearth: Running, owner: UserPublic) -> httpx.Client:
    headers = {"authorization": f"Bearer {api_key(hearth, owner)}"}
    with httpx.Client(base_url=f"{base_url}/api", timeout=60, headers=headers) as client:
        yield client


@pytest.fixture(scope="module")
def documents(hearth: Running) -> Documents:
    return hearth.app.state.documents


def new_collection(api: httpx.Client) -> str:
    resp = api.post("/collections", json={"name": f"c-{uuid.uuid4().hex[:8]}"})
    assert resp.status_code == 201, resp.text
    return resp.json()["id"]


def wait_done(api: httpx.Client, document_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        document = api.get(f"/documents/{document_id}").json()
        if document["status"] in ("ready", "failed"):
            return document
        time.sleep(0.1)
    raise AssertionError(f"document {document_id} still {document['status']}")


def upload(api: httpx.Client, collection: str, name: str, data: bytes) -> httpx.Response:
    return api.post(f"/collections/{collection}/documents", files={"file": (name, data)})


def chunk_count(hearth: Running, document_id: str) -> int:
    async def count() -> int:
        async with hearth.app.state.database.session() as session:
            return (
                await session.execute(
                    text("SELECT count(*) FROM document_chunk WHERE document_id = :d"),
                    {"d": document_id},
                )
            ).scalar_one()

    return hearth.call(count())


def test_upload_ingest_search_with_citations(api: httpx.Client) -> None:
    collection = new_collection(api)
    resp = upload(api, collection, "guide.md", GUIDE)
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "queued"
    document = wait_done(api, resp.json()["id"])
    assert document["status"] == "ready", document["error"]
    assert document["chunks"] >= 2 and document["title"] == "Hearth guide"

    for mode in ("hybrid", "vector", "text"):
        found = api.post(
            f"/collections/{collection}/search",
            json={"query": "who polished the lens of the lighthouse", "mode": mode, "k": 3},
        )
        assert found.status_code == 200, found.text
        best = found.json()["results"][0]
        assert "Skerryvore" in best["text"], (mode, found.json())
        assert best["headings"][-1] == "Lighthouses"
        assert best["filename"] == "guide.md" and best["document_id"] == document["id"]
        assert best["end"] > best["start"]


def test_a_title_and_headings_are_found_by_full_text(
    api: httpx.Client, hearth: Running, base_url: str
) -> None:
    """A document's title and section headings are in the full-text index (issue 18): its
    text never says "Laramie" or "premiere", yet a text search for either finds it, and
    `explain` (admins only) says how each side ranked each result."""
    collection = new_collection(api)
    play = b"# The Laramie Project\n\nA play by Moises Kaufman about a murder in Wyoming.\n\n"
    play += b"## Premiere\n\nIt opened in Denver in February 2000.\n"
    wait_done(api, upload(api, collection, "play.md", play).json()["id"])
    other = b"# Notes\n\nA project plan lists the tasks of the week.\n"
    wait_done(api, upload(api, collection, "notes.md", other).json()["id"])

    def search(query: str, **body: object) -> httpx.Response:
        return api.post(
            f"/collections/{collection}/search", json={"query": query, "mode": "text", **body}
        )

    titled = search("The Laramie Project").json()["results"]
    assert titled and titled[0]["title"] == "The Laramie Project", titled
    assert "explain" not in titled[0]  # only when asked
    assert "Denver" in search("premiere").json()["results"][0]["text"]

    refused = search("The Laramie Project", explain=True)
    assert refused.status_code == 403 and "admins" in refused.json()["error"]["message"]
    admin = create_user(hearth, admin=True)
    as_admin = {"authorization": f"Bearer {api_key(hearth, admin)}"}
    url = f"{base_url}/api/collections/{collection}/search"
    body = {"query": "The Laramie Project", "explain": True}
    # an admin who may not read the collection gets 404 all the same
    assert httpx.post(url, json=body, headers=as_admin).status_code == 404
    grant = api.put(
        f"/collections/{collection}/grants", json={"principal": admin.id, "permission": "read"}
    )
    assert grant.status_code == 204, grant.text
    explained = httpx.post(url, json=body, headers=as_admin).json()["results"]
    why = explained[0]["explain"]
    assert explained[0]["title"] == "The Laramie Project"
    # Both sides found it among their first two (the play has two chunks, both titled).
    assert 1 <= why["vector_rank"] <= 2 and 1 <= why["text_rank"] <= 2
    assert 0 < why["score"] <= 1  # half of each side's normalised score
    assert why["similarity"] > 0 and why["relevance"] > 0 and why["score"] == explained[0]["score"]


def test_full_text_matches_any_word_unless_excluding(api: httpx.Client) -> None:
    collection = new_collection(api)
    wait_done(api, upload(api, collection, "guide.md", GUIDE + b"\nfull text").json()["id"])

    def texts(query: str) -> list[str]:
        found = api.post(f"/collections/{collection}/search", json={"query": query, "mode": "text"})
        return [hit["text"] for hit in found.json()["results"]]

    # "dawn" and "brass" appear nowhere: a plain question still finds the passage.
    assert "Skerryvore" in texts("who polished the brass lens of the lighthouse at dawn")[0]
    assert any("Skerryvore" in t for t in texts('"great lens"'))
    assert not any("Skerryvore" in t for t in texts("lighthouse -Skerryvore"))


def test_same_bytes_are_not_embedded_again(api: httpx.Client, hearth: Running) -> None:
    collection = new_collection(api)
    first = wait_done(api, upload(api, collection, "a.md", GUIDE + b"\nunique one").json()["id"])
    again = upload(api, collection, "renamed.md", GUIDE + b"\nunique one")
    assert again.status_code == 200 and again.json()["id"] == first["id"]

    other = new_collection(api)
    copy = wait_done(api, upload(api, other, "a.md", GUIDE + b"\nunique one").json()["id"])
    assert copy["status"] == "ready" and copy["id"] != first["id"]
    assert copy["chunks"] == first["chunks"] and copy["embedded_tokens"] == 0  # copied
    assert chunk_count(hearth, copy["id"]) == first["chunks"]


def test_delete_and_reindex(api: httpx.Client, hearth: Running) -> None:
    collection = new_collection(api)
    document = wait_done(api, upload(api, collection, "g.md", GUIDE + b"\nreindex").json()["id"])
    chunks = chunk_count(hearth, document["id"])
    assert chunks == document["chunks"] > 0

    assert api.post(f"/documents/{document['id']}/reindex").status_code == 200
    again = wait_done(api, document["id"])
    assert again["status"] == "ready" and chunk_count(hearth, document["id"]) == chunks

    assert api.delete(f"/documents/{document['id']}").status_code == 204
    assert api.get(f"/documents/{document['id']}").status_code == 404
    assert chunk_count(hearth, document["id"]) == 0
    found = api.post(f"/collections/{collection}/search", json={"query": "lighthouse"})
    assert found.json()["results"] == []


def test_lexeme_counts_follow_the_documents(api: httpx.Client, hearth: Running) -> None:
    """The per-collection counts behind the full-text IDF match a recount of the chunks
    after upload, re-index, the copy of a twin, deletion, and the collection's deletion."""

    def wrong(*collections: str) -> list:
        async def check() -> list:
            async with hearth.app.state.database.session() as session:
                rows = await session.execute(
                    text(MISMATCHES), {"collections": [uuid.UUID(c) for c in collections]}
                )
                return list(rows)

        return hearth.call(check())

    def lexemes(collection: str) -> set[str]:
        async def read() -> set[str]:
            async with hearth.app.state.database.session() as session:
                rows = await session.scalars(
                    text("SELECT lexeme FROM collection_lexeme WHERE collection_id = :c"),
                    {"c": collection},
                )
                return set(rows)

        return hearth.call(read())

    collection, twin = new_collection(api), new_collection(api)
    guide = wait_done(api, upload(api, collection, "g.md", GUIDE + b"\ncounted").json()["id"])
    extra = upload(api, collection, "x.md", b"# Extra\n\nQuokkas nap under wattle.").json()
    wait_done(api, extra["id"])
    assert wrong(collection) == [] and {"lighthous", "quokka"} <= lexemes(collection)
    assert api.post(f"/documents/{guide['id']}/reindex").status_code == 200
    assert wait_done(api, guide["id"])["status"] == "ready"
    copied = wait_done(api, upload(api, twin, "g.md", GUIDE + b"\ncounted").json()["id"])
    assert copied["embedded_tokens"] == 0  # copied from the first collection's chunks
    assert wrong(collection, twin) == [] and "lighthous" in lexemes(twin)
    assert api.delete(f"/documents/{extra['id']}").status_code == 204
    assert wrong(collection) == [] and "quokka" not in lexemes(collection)
    assert api.delete(f"/collections/{collection}").status_code == 204
    assert lexemes(collection) == set() and wrong(twin) == []


def test_ingesting_twice_never_duplicates_chunks(
    api: httpx.Client, hearth: Running, owner: UserPublic
) -> None:
    """What a worker restart mid-job amounts to: the job runs again from the start."""
    collection = new_collection(api)
    document = wait_done(api, upload(api, collection, "t.md", GUIDE + b"\ntwice").json()["id"])
    documents: Documents = hearth.app.state.documents
    hearth.call(documents.reindex_document(Principal(owner.id), uuid.UUID(document["id"])))
    hearth.call(documents.reindex_document(Principal(owner.id), uuid.UUID(document["id"])))
    wait_done(api, document["id"])
    time.sleep(0.5)
    assert chunk_count(hearth, document["id"]) == document["chunks"]


@pytest.mark.parametrize(
    "name, data, reason",
    [
        ("broken.pdf", b"%PDF-1.7 this is not really a pdf", "pdf"),
        ("blank.md", b"   \n\n  ", "no text"),
    ],
)
def test_bad_file_fails_only_that_document(
    api: httpx.Client, name: str, data: bytes, reason: str
) -> None:
    collection = new_collection(api)
    good = upload(api, collection, "good.md", GUIDE + name.encode())
    bad = upload(api, collection, name, data)
    failed = wait_done(api, bad.json()["id"])
    assert failed["status"] == "failed" and reason in failed["error"].lower(), failed
    assert wait_done(api, good.json()["id"])["status"] == "ready"


def test_hostile_files_fail_alone_and_the_server_stays_small(api: httpx.Client) -> None:
    # The worker runs in this process: its peak memory is what the bombs would have raised.
    hostile = {
        "gigabyte.docx": padded(
            make_docx(), "word/document.xml", b" ", 1024 * MB, declared_size=1000
        ),
        "empty.docx": padded(
            make_docx(), "word/document.xml", b"<w:p/>", 100 * MB, before=b"<w:sectPr"
        ),
    }
    collection = new_collection(api)
    with PeakMemory() as memory:
        bad = {
            name: upload(api, collection, name, data).json()["id"] for name, data in hostile.items()
        }
        good = upload(api, collection, "good.md", GUIDE + b"after the bombs")
        failed = {name: wait_done(api, document_id) for name, document_id in bad.items()}
        assert wait_done(api, good.json()["id"])["status"] == "ready"
    assert (
        failed["gigabyte.docx"]["error"]
        == "the file is not a valid Word document (it may be damaged)"
    )
    assert failed["empty.docx"]["error"].startswith(
        "the Word document has more than 2,000,000 elements"
    )
    assert memory.growth_mb <= MAX_GROWTH_MB


def test_upload_errors(api: httpx.Client) -> None:
    collection = new_collection(api)
    unsupported = upload(api, collection, "tool.exe", b"MZ\x90\x00")
    assert (
        unsupported.status_code == 400 and "unsupported" in unsupported.json()["error"]["message"]
    )
    assert upload(api, collection, "empty.txt", b"").status_code == 400
    assert upload(api, str(uuid.uuid4()), "a.txt", b"hello").status_code == 404
    assert api.post("/collections", json={"name": ""}).status_code == 400
    assert api.post(f"/collections/{collection}/search", json={"query": ""}).status_code == 400
    assert (
        api.post(
            f"/collections/{collection}/search", json={"query": "x", "mode": "magic"}
        ).status_code
        == 400
    )


def test_permissions_inside_the_query(hearth: Running, documents: Documents) -> None:
    """Bob never retrieves Alice's chunks, by any mode, until she shares the collection."""
    mine = hearth.call(documents.create_collection(ALICE, CollectionCreate(name="private")))
    doc, _ = hearth.call(
        documents.add_document(
            ALICE, mine.id, "secret.md", b"# Plans\n\nThe secret codeword is marmalade."
        )
    )
    deadline = time.monotonic() + 60
    while hearth.call(documents.get_document(ALICE, doc.id)).status != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.1)

    def hits(who: Principal, mode: str) -> list:
        return hearth.call(documents.search(who, [mine.id], "secret codeword marmalade", mode=mode))

    for mode in ("hybrid", "vector", "text"):
        assert hits(ALICE, mode), mode
        assert hits(BOB, mode) == [] and hits(CAROL, mode) == [], mode
    with pytest.raises(NotFound):
        hearth.call(documents.get_collection(BOB, mine.id))
    with pytest.raises(NotFound):
        hearth.call(documents.get_document(BOB, doc.id))
    with pytest.raises(NotFound):
        hearth.call(documents.delete_document(BOB, doc.id))

    hearth.call(documents.grant(ALICE, mine.id, GrantCreate(principal="bob")))
    hearth.call(documents.grant(ALICE, mine.id, GrantCreate(principal="group:staff")))
    assert hits(BOB, "hybrid") and hits(CAROL, "vector")
    with pytest.raises(Forbidden):  # read, not write
        hearth.call(documents.add_document(BOB, mine.id, "x.md", b"# x\n\ny"))
    with pytest.raises(Forbidden):
        hearth.call(documents.grant(BOB, mine.id, GrantCreate(principal="mallory")))
    hearth.call(documents.revoke(ALICE, mine.id, "bob"))
    assert hits(BOB, "text") == []


def test_filtered_search_still_returns_k(hearth: Running, documents: Documents) -> None:
    """10,000 chunks over 100 collections: searching one (1% of rows) still finds k."""
    import numpy as np

    owner = Principal(f"bulk-{uuid.uuid4().hex[:6]}")
    collections = [
        hearth.call(documents.create_collection(owner, CollectionCreate(name=f"c{i}")))
        for i in range(100)
    ]

    async def fill() -> None:
        rng = np.random.default_rng(7)
        async with hearth.app.state.database.session() as session, session.begin():
            for c in collections:
                doc_id = uuid.uuid4()
                await session.execute(
                    text(
                        "INSERT INTO stored_file (sha256, size) VALUES (:s, 1) "
                        "ON CONFLICT DO NOTHING"
                    ),
                    {"s": "0" * 64},
                )
                await session.execute(
                    text(
                        "INSERT INTO document (id, collection_id, file_sha256, filename, status) "
                        "VALUES (:d, :c, :s, 'synthetic', 'ready')"
                    ),
                    {"d": doc_id, "c": c.id, "s": "0" * 64},
                )
                vectors = rng.normal(size=(100, 384))
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                await session.execute(
                    text(
                        "INSERT INTO document_chunk (collection_id, document_id, ordinal, text, "
                        "embedding) VALUES (:c, :d, :o, :t, CAST(:e AS vector))"
                    ),
                    [
                        {
                            "c": c.id,
                            "d": doc_id,
                            "o": i,
                            "t": f"synthetic chunk {i}",
                            "e": "[" + ",".join(f"{x:.5f}" for x in v) + "]",
                        }
                        for i, v in enumerate(vectors)
                    ],
                )

    hearth.call(fill(), timeout=600)  # HNSW upkeep on 10k inserts; slow on a busy machine
    target = collections[37].id
    results = hearth.call(
        documents.search(owner, [target], "an unrelated question", k=10, mode="vector")
    )
    assert len(results) == 10
    assert {r.collection_id for r in results} == {target}


def test_documents_whose_job_was_lost_are_queued_again(
    api: httpx.Client, hearth: Running, owner: UserPublic
) -> None:
    """The upload was stored, then deferring its job failed: the periodic sweep finds the
    document still `queued` and queues it again."""
    documents: Documents = hearth.app.state.documents
    collection = new_collection(api)
    enqueue = documents.enqueue

    async def broken(document_id: uuid.UUID) -> None:
        raise ConnectionError("the queue's database went away")

    documents.enqueue = broken
    try:
        with pytest.raises(ConnectionError):
            hearth.call(
                documents.add_document(
                    Principal(owner.id), uuid.UUID(collection), "lost.md", GUIDE + b"\nlost", None
                )
            )
    finally:
        documents.enqueue = enqueue
    lost = api.get(f"/collections/{collection}/documents").json()[0]
    assert lost["status"] == "queued"
    assert hearth.call(documents.requeue_orphans(older_than=60)) == 0  # too recent to judge
    assert hearth.call(documents.requeue_orphans(older_than=0)) >= 1
    assert wait_done(api, lost["id"])["status"] == "ready"


def test_a_grant_is_listed_and_revoked_through_the_api(hearth: Running, api: httpx.Client) -> None:
    friend = create_user(hearth)
    theirs = {"authorization": f"Bearer {api_key(hearth, friend)}"}
    collection = api.post("/collections", json={"name": f"shared-{uuid.uuid4().hex[:6]}"}).json()
    grants = f"/collections/{collection['id']}/grants"
    assert api.put(grants, json={"principal": friend.id}).status_code == 204
    assert api.get(grants).json() == [{"principal": friend.id, "permission": "read"}]
    seen = httpx.get(f"{hearth.url}/api/collections/{collection['id']}", headers=theirs)
    assert seen.status_code == 200
    # Only the owner sees or changes the grants; the grantee cannot revoke others' or own.
    assert httpx.get(f"{hearth.url}/api{grants}", headers=theirs).status_code == 403
    assert httpx.delete(f"{hearth.url}/api{grants}/{friend.id}", headers=theirs).status_code == 403
    assert api.delete(f"{grants}/{friend.id}").status_code == 204
    assert api.get(grants).json() == []
    gone = httpx.get(f"{hearth.url}/api/collections/{collection['id']}", headers=theirs)
    assert gone.status_code == 404
    assert api.delete(f"{grants}/{friend.id}").status_code == 404  # not shared with them now
