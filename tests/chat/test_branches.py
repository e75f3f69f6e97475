"""Chat history as a tree: regenerating and editing add branches and delete nothing; the
listing gives each message's place among its siblings ("< 2/3 >") and selecting one shows
its branch; only the active path reaches the model (seen by a fake OpenAI upstream),
search, Markdown and shared links; export and import keep the tree; two regenerates at
once both become siblings; and nobody branches or selects in someone else's chat, nor
links messages across chats (the database itself refuses that)."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from sqlalchemy import Connection

from hearth.accounts.principal import Principal
from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.db.migrate import alembic_config, upgrade
from hearth.db.session import Database
from hearth.errors import NotFound
from hearth.server import create_app
from tests._accounts import create_user, signed_in
from tests._server import Running, running
from tests.chat.test_chats import events, send
from tests.fakes.openai_upstream import FakeOpenAIUpstream

MODEL = "smollm2-135m-instruct"
REMOTE = "remote-chat"


@pytest.fixture
def alice(hearth: Running) -> httpx.Client:
    return signed_in(hearth, create_user(hearth))


def path(client: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    return client.get(f"/api/chats/{chat_id}/messages", params={"limit": 500}).json()["items"]


def places(items: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return [(m["sibling_index"], m["siblings"]) for m in items]


def streamed(client: httpx.Client, method: str, url: str, **body: Any) -> list[tuple[str, dict]]:
    with client.stream(method, url, **body) as response:
        assert response.status_code == 200, response.read()
        got = events(response)
    assert got[-1][0] in ("done", "error"), got[-1]
    return got


def a_small_chat(client: httpx.Client, model: str = MODEL) -> str:
    chat = client.post("/api/chats", json={"model": model}).json()["id"]
    client.patch(f"/api/chats/{chat}", json={"max_tokens": 6})  # SmolLM2 may loop: keep it short
    return chat


# A chat with two versions of its second question, the first one shown; as Hearth exports.
TREE = {
    "title": "Trees",
    "model": MODEL,
    "messages": [
        {"parent": None, "role": "user", "content": "Which tree is tallest?"},
        {"parent": 1, "role": "assistant", "content": "The coast redwood."},
        {"parent": 2, "role": "user", "content": "Where does it grow?"},
        {"parent": 3, "role": "assistant", "content": "In northern California."},
        {"parent": 2, "role": "user", "content": "How old can it get zanzibar?"},
        {"parent": 5, "role": "assistant", "content": "Over two thousand years."},
    ],
    "current": 4,
}


def imported(client: httpx.Client, data: dict[str, Any] = TREE) -> str:
    made = client.post("/api/chats/import", json=data)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_regenerating_twice_keeps_three_answers_and_selecting_switches(
    alice: httpx.Client,
) -> None:
    chat = a_small_chat(alice)
    send(alice, chat, "Name a colour.")
    question, first = path(alice, chat)
    assert (question["parent_id"], first["parent_id"]) == (None, question["id"])
    assert places([question, first]) == [(1, 1), (1, 1)]
    url = f"/api/chats/{chat}/messages"
    streamed(alice, "POST", f"{url}/{question['id']}/regenerate")
    streamed(alice, "POST", f"{url}/{first['id']}/regenerate")  # an answer's id: its question
    shown = path(alice, chat)
    assert [m["role"] for m in shown] == ["user", "assistant"] and shown[0]["id"] == question["id"]
    third = shown[1]
    assert places(shown) == [(1, 1), (3, 3)] and third["next_sibling"] is None
    second = third["previous_sibling"]
    assert first["id"] < second < third["id"]

    # Previous: the second, then the first. Nothing was deleted.
    on_second = alice.post(f"{url}/{second}/select").json()["items"]
    assert [m["id"] for m in on_second] == [question["id"], second]
    assert places(on_second)[1] == (2, 3) and on_second[1]["previous_sibling"] == first["id"]
    alice.post(f"{url}/{first['id']}/select")
    on_first = path(alice, chat)
    assert on_first[1]["id"] == first["id"] and places(on_first)[1] == (1, 3)
    assert on_first[1]["content"] == first["content"]
    assert alice.get(f"/api/chats/{chat}").json()["current_message_id"] == first["id"]
    exported = alice.get(f"/api/chats/{chat}/export").json()
    assert [m["parent"] for m in exported["messages"]] == [None, 1, 1, 1]
    assert exported["current"] == 2
    # Sending now continues the branch shown: after the first answer.
    send(alice, chat, "And another?")
    assert [m["id"] for m in path(alice, chat)[:2]] == [question["id"], first["id"]]


def test_an_edit_is_a_branch_and_the_old_one_stays_reachable(alice: httpx.Client) -> None:
    chat = a_small_chat(alice)
    send(alice, chat, "Name a fruit.")
    send(alice, chat, "Name a vegetable.")
    old = path(alice, chat)
    streamed(
        alice, "PUT", f"/api/chats/{chat}/messages/{old[0]['id']}", json={"content": "Name a bird."}
    )
    new = path(alice, chat)
    assert [m["content"] for m in new][:1] == ["Name a bird."] and len(new) == 2
    assert new[0]["parent_id"] is None and places(new)[0] == (2, 2)
    assert new[0]["previous_sibling"] == old[0]["id"] and new[0]["id"] > old[-1]["id"]
    # Only the branch shown is searched and exported as Markdown.
    assert alice.get("/api/chats", params={"q": "vegetable"}).json()["items"] == []
    markdown = alice.get(f"/api/chats/{chat}/export", params={"format": "md"}).text
    assert "Name a bird." in markdown and "vegetable" not in markdown

    # Previous: the old branch as it was left, down to its last answer.
    back = alice.post(f"/api/chats/{chat}/messages/{old[0]['id']}/select").json()["items"]
    assert [m["id"] for m in back] == [m["id"] for m in old]
    assert [m["content"] for m in back] == [m["content"] for m in old]
    assert places(back)[0] == (1, 2) and back[0]["next_sibling"] == new[0]["id"]
    found = alice.get("/api/chats", params={"q": "vegetable"}).json()["items"]
    assert [c["id"] for c in found] == [chat]
    # An answer is not edited; an unknown message is not found.
    answer = old[1]["id"]
    refused = alice.put(f"/api/chats/{chat}/messages/{answer}", json={"content": "x"})
    assert refused.status_code == 400 and "Only your own messages" in refused.text
    assert alice.post(f"/api/chats/{chat}/messages/{answer + 10_000}/select").status_code == 404
    assert len(alice.get(f"/api/chats/{chat}/export").json()["messages"]) == 6


def test_export_and_import_keep_the_tree(alice: httpx.Client) -> None:
    chat = imported(alice)
    shown = path(alice, chat)
    assert [m["content"][:9] for m in shown] == ["Which tre", "The coast", "Where doe", "In northe"]
    assert places(shown) == [(1, 1), (1, 1), (1, 2), (1, 1)]
    exported = alice.get(f"/api/chats/{chat}/export").json()
    assert [m["parent"] for m in exported["messages"]] == [None, 1, 2, 3, 2, 5]
    assert exported["current"] == 4
    # Imported again, exactly the same tree, the same branch shown.
    copy = imported(alice, exported)
    assert alice.get(f"/api/chats/{copy}/export").json() == exported
    assert [m["content"] for m in path(alice, copy)] == [m["content"] for m in shown]
    other = alice.post(f"/api/chats/{copy}/messages/{path(alice, copy)[2]['next_sibling']}/select")
    assert [m["content"][:9] for m in other.json()["items"]][2:] == ["How old c", "Over two "]

    # An export from before branches (no parents, no current) is one line.
    line = {
        "title": "Line",
        "model": MODEL,
        "messages": [
            {"role": role, "content": f"m{n}"} for n, role in enumerate(["user", "assistant"] * 2)
        ],
    }
    old = path(alice, imported(alice, line))
    assert [m["content"] for m in old] == ["m0", "m1", "m2", "m3"]
    assert [m["parent_id"] for m in old] == [None, *[m["id"] for m in old[:-1]]]

    # A parent must be an earlier message; the current one must exist: a 400 naming it.
    forward = {**TREE, "messages": [{**TREE["messages"][0], "parent": 2}, *TREE["messages"][1:]]}
    refused = alice.post("/api/chats/import", json=forward)
    assert refused.status_code == 400 and "messages.0.parent" in refused.text
    refused = alice.post("/api/chats/import", json={**TREE, "current": 7})
    assert refused.status_code == 400 and "current" in refused.text


def test_search_and_shared_links_follow_the_path(hearth: Running, alice: httpx.Client) -> None:
    chat = imported(alice)
    # "zanzibar" is only in the other version of the second question.
    assert alice.get("/api/chats", params={"q": "zanzibar"}).json()["items"] == []
    assert alice.get("/api/chats", params={"q": "redwood"}).json()["items"][0]["id"] == chat
    link = alice.post(f"/api/chats/{chat}/share").json()
    assert link["messages"] == 4
    bob = signed_in(hearth, create_user(hearth))

    def shared() -> list[str]:
        shown = bob.get(f"/api/shared/{link['token']}").json()["messages"]
        return [m["content"][:9] for m in shown]

    assert shared() == ["Which tre", "The coast", "Where doe", "In northe"]
    # The owner switches branch and writes on: the link still shows what it was made with.
    other = path(alice, chat)[2]["next_sibling"]
    alice.post(f"/api/chats/{chat}/messages/{other}/select")
    assert [c["id"] for c in alice.get("/api/chats", params={"q": "zanzibar"}).json()["items"]] == [
        chat
    ]
    owner = Principal(alice.get("/api/auth/me").json()["id"])
    hearth.call(
        hearth.app.state.chats.add_message(owner, uuid.UUID(chat), role="user", content="PIN 1234")
    )
    assert shared() == ["Which tre", "The coast", "Where doe", "In northe"]
    assert alice.get(f"/api/chats/{chat}/share").json()["messages"] == 4


def test_nobody_selects_or_branches_in_someone_elses_chat(
    hearth: Running, alice: httpx.Client
) -> None:
    chat = imported(alice)
    mine = path(alice, chat)
    elsewhere = path(alice, imported(alice))  # alice's other chat
    bob = signed_in(hearth, create_user(hearth))
    bobs_chat = imported(bob)
    bobs = path(bob, bobs_chat)
    url = f"/api/chats/{chat}/messages"
    for client, message in (
        (bob, mine[2]["id"]),  # bob, in alice's chat
        (alice, elsewhere[2]["id"]),  # a message of another of her chats
        (alice, bobs[2]["id"]),  # a message of bob's chat, in hers
    ):
        attempts = [
            client.post(f"{url}/{message}/select"),
            client.post(f"{url}/{message}/regenerate"),
            client.put(f"{url}/{message}", json={"content": "mine now"}),
        ]
        assert [a.status_code for a in attempts] == [404] * 3, [a.text for a in attempts]
    # Nor does the page's conversation (what the arrows load) show it to him.
    assert bob.get(f"/c/{chat}/conversation").status_code == 404
    assert "Where does it grow?" in alice.get(f"/c/{chat}/conversation").text
    assert path(alice, chat) == mine
    assert len(alice.get(f"/api/chats/{chat}/export").json()["messages"]) == 6
    assert path(bob, bobs_chat) == bobs

    # Below the API too: the service refuses a parent of another chat, and the database
    # refuses such a link whoever writes it (the foreign key is on chat and parent).
    owner = Principal(alice.get("/api/auth/me").json()["id"])
    with pytest.raises(NotFound):
        hearth.call(
            hearth.app.state.chats.add_message(
                owner, uuid.UUID(chat), role="user", content="x", parent=elsewhere[1]["id"]
            )
        )

    async def link_across() -> None:
        url_ = hearth.app.state.settings.database_url.get_secret_value()
        url_ = url_.replace("+asyncpg", "")
        conn = await asyncpg.connect(url_)
        try:
            await conn.execute(
                "UPDATE chat_message SET parent_id = $1 WHERE id = $2",
                elsewhere[1]["id"],
                mine[3]["id"],
            )
        finally:
            await conn.close()

    with pytest.raises(asyncpg.ForeignKeyViolationError):
        asyncio.run(link_across())


# --- what reaches the engine: a fake OpenAI-compatible upstream records it -----------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIUpstream]:
    with FakeOpenAIUpstream(model_ids=["ok"]) as fake:
        yield fake


@pytest.fixture(scope="module")
def remote(upstream: FakeOpenAIUpstream, postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("branches"),
        engines=[
            OpenAIEngineConfig(
                name="gpu",
                base_url=upstream.base_url,
                models=[ModelConfig(name=REMOTE, upstream="ok")],
            )
        ],
    )
    with running(create_app(settings)) as server:
        yield server


def sent(upstream: FakeOpenAIUpstream) -> list[list[str]]:
    """The conversations the answers sent (not the titles), without a system prompt."""
    return [
        [m["content"] for m in r.json["messages"] if m["role"] != "system"]
        for r in upstream.requests
        if r.path == "/v1/chat/completions" and r.json.get("stream")
    ]


def test_only_the_active_path_reaches_the_model(
    remote: Running, upstream: FakeOpenAIUpstream
) -> None:
    upstream.reset()
    client = signed_in(remote, create_user(remote))
    chat = client.post("/api/chats", json={"model": REMOTE}).json()["id"]
    send(client, chat, "alpha")
    send(client, chat, "beta")
    alpha, answer, beta, _ = path(client, chat)
    streamed(client, "PUT", f"/api/chats/{chat}/messages/{alpha['id']}", json={"content": "gamma"})
    send(client, chat, "delta")
    # Back on the first branch, its second answer asked again.
    client.post(f"/api/chats/{chat}/messages/{beta['id']}/select")
    streamed(client, "POST", f"/api/chats/{chat}/messages/{beta['id']}/regenerate")
    reply = answer["content"]
    assert reply.strip()
    assert sent(upstream) == [
        ["alpha"],
        ["alpha", reply, "beta"],
        ["gamma"],
        ["gamma", reply, "delta"],
        ["alpha", reply, "beta"],
    ]


def test_two_regenerates_at_once_become_siblings(
    remote: Running, upstream: FakeOpenAIUpstream
) -> None:
    upstream.reset()
    client = signed_in(remote, create_user(remote))
    chat = client.post("/api/chats", json={"model": REMOTE}).json()["id"]
    send(client, chat, "once")
    question, _ = path(client, chat)
    upstream.chunk_count, upstream.chunk_delay = 5, 0.2  # both streams open at once
    results: list[str] = []
    barrier = threading.Barrier(2)

    def regenerate() -> None:
        barrier.wait()
        got = streamed(client, "POST", f"/api/chats/{chat}/messages/{question['id']}/regenerate")
        results.append(got[-1][0])

    threads = [threading.Thread(target=regenerate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    upstream.reset()
    assert results == ["done", "done"]
    exported = client.get(f"/api/chats/{chat}/export").json()
    assert [m["parent"] for m in exported["messages"]] == [None, 1, 1, 1]
    shown = path(client, chat)
    assert places(shown) == [(1, 1), (3, 3)] and shown[0]["id"] == question["id"]
    assert exported["messages"][exported["current"] - 1]["role"] == "assistant"


# --- the migration ----------------------------------------------------------------------------


def test_the_migration_makes_existing_chats_one_line(database_url: str) -> None:
    def downgrade(connection: Connection) -> None:
        command.downgrade(alembic_config(connection), "0020")

    async def run() -> tuple[list[tuple[Any, ...]], list[Any]]:
        db = Database(database_url, pool_size=1)
        try:
            async with db.engine.connect() as conn:
                await conn.run_sync(downgrade)
                await conn.commit()
            raw = await asyncpg.connect(database_url.replace("+asyncpg", ""))
            try:
                chats = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4()]
                for n, chat in enumerate(chats):
                    await raw.execute(
                        "INSERT INTO chat (id, owner_id, title, model, archived, collection_ids)"
                        " VALUES ($1, 'u', $2, 'm', false, '{}')",
                        chat,
                        f"chat {n}",
                    )
                # Interleaved, as chats written at the same time are; the third is empty.
                for n in range(6):
                    await raw.execute(
                        "INSERT INTO chat_message (chat_id, role, content, status)"
                        " VALUES ($1, $2, $3, 'complete')",
                        chats[n % 2],
                        "user" if n // 2 % 2 == 0 else "assistant",
                        f"message {n}",
                    )
                await upgrade(db)
                rows = await raw.fetch(
                    "SELECT chat_id, content, parent_id, id FROM chat_message ORDER BY id"
                )
                current = await raw.fetch(
                    "SELECT current_message_id FROM chat WHERE id = ANY($1) ORDER BY title",
                    chats,
                )
                return [tuple(r) for r in rows], [r[0] for r in current]
            finally:
                await raw.close()
        finally:
            await db.close()

    rows, current = asyncio.run(run())
    ids = [row[3] for row in rows]
    # Chat 0 holds messages 0, 2, 4; chat 1 holds 1, 3, 5: each follows the one before.
    assert [row[2] for row in rows] == [None, None, ids[0], ids[1], ids[2], ids[3]]
    assert current == [ids[4], ids[5], None]
