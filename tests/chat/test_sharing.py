"""Shared chats over HTTP: the owner makes a read-only link, another signed-in user reads
the chat up to the moment it was shared (with its citations), a revoked or wrong link is a
404, nobody shares or revokes someone else's chat, and nobody signed out reads a link."""

from __future__ import annotations

import uuid

import httpx
import pytest

from hearth.accounts.principal import Principal
from tests._accounts import create_user, signed_in, user_headers
from tests._server import Running

CITATION = {
    "document_id": str(uuid.uuid4()),
    "chunk_id": 7,
    "filename": "boiler.pdf",
    "title": "Boiler manual",
    "page": 1,
    "headings": ["Reset"],
    "text": "Hold the red button for ten seconds.",
}


def a_chat(client: httpx.Client, title: str = "Boiler") -> str:
    exported = {
        "title": title,
        "model": "smollm2-135m-instruct",
        "messages": [
            {"role": "user", "content": "How do I reset the boiler?"},
            {"role": "assistant", "content": "Hold the red button [1].", "citations": [CITATION]},
        ],
    }
    made = client.post("/api/chats/import", json=exported)
    assert made.status_code == 201, made.text
    return made.json()["id"]


@pytest.fixture
def alice(hearth: Running) -> httpx.Client:
    return signed_in(hearth, create_user(hearth))


@pytest.fixture
def bob(hearth: Running) -> httpx.Client:
    return signed_in(hearth, create_user(hearth))


def test_a_link_shows_the_chat_as_it_was_to_another_user(
    hearth: Running, alice: httpx.Client, bob: httpx.Client
) -> None:
    chat = a_chat(alice)
    made = alice.post(f"/api/chats/{chat}/share")
    assert made.status_code == 201, made.text
    link = made.json()
    assert len(link["token"]) >= 43  # 32 random bytes, base64url: 256 bits
    assert link["path"] == f"/s/{link['token']}" and link["url"] == hearth.url + link["path"]
    assert link["messages"] == 2
    # Sharing again hands out the same link; the owner can read it back.
    again = alice.post(f"/api/chats/{chat}/share")
    assert again.status_code == 200 and again.json()["token"] == link["token"]
    assert alice.get(f"/api/chats/{chat}/share").json()["token"] == link["token"]

    shared = bob.get(f"/api/shared/{link['token']}")
    assert shared.status_code == 200, shared.text
    body = shared.json()
    assert body["title"] == "Boiler" and body["earlier"] is None
    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "How do I reset the boiler?"),
        ("assistant", "Hold the red button [1]."),
    ]
    assert body["messages"][1]["citations"] == [CITATION]
    # A key of another user reads it too: anyone signed in to the site.
    by_key = httpx.get(f"{hearth.url}/api/shared/{link['token']}", headers=user_headers(hearth))
    assert by_key.status_code == 200

    # A snapshot: what the owner writes afterwards stays private.
    owner = Principal(alice.get("/api/auth/me").json()["id"])
    hearth.call(
        hearth.app.state.chats.add_message(
            owner, uuid.UUID(chat), role="user", content="My PIN is 1234."
        )
    )
    later = bob.get(f"/api/shared/{link['token']}").json()["messages"]
    assert len(later) == 2 and "1234" not in str(later)
    # Paged like a chat: the latest first, `before` for the earlier ones.
    last = bob.get(f"/api/shared/{link['token']}", params={"limit": 1}).json()
    assert [m["role"] for m in last["messages"]] == ["assistant"]
    first = bob.get(f"/api/shared/{link['token']}", params={"limit": 1, "before": last["earlier"]})
    assert [m["role"] for m in first.json()["messages"]] == ["user"]


def test_a_revoked_or_wrong_link_is_not_found(alice: httpx.Client, bob: httpx.Client) -> None:
    chat = a_chat(alice)
    token = alice.post(f"/api/chats/{chat}/share").json()["token"]
    assert alice.delete(f"/api/chats/{chat}/share").status_code == 204
    for reader in (bob, alice):
        gone = reader.get(f"/api/shared/{token}")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert alice.get(f"/api/chats/{chat}/share").status_code == 404
    assert alice.delete(f"/api/chats/{chat}/share").status_code == 204  # nothing left to end
    # Shared again: a new link; the old one stays dead.
    new = alice.post(f"/api/chats/{chat}/share")
    assert new.status_code == 201 and new.json()["token"] != token
    assert bob.get(f"/api/shared/{token}").status_code == 404
    assert bob.get(f"/api/shared/{new.json()['token']}").status_code == 200
    for wrong in ("x", token[:-1] + ("A" if token[-1] != "A" else "B"), "y" * 500):
        assert bob.get(f"/api/shared/{wrong}").status_code == 404
    # Deleting the chat kills its link.
    assert alice.delete(f"/api/chats/{chat}").status_code == 204
    assert bob.get(f"/api/shared/{new.json()['token']}").status_code == 404


def test_nobody_shares_or_revokes_someone_elses_chat(
    hearth: Running, alice: httpx.Client, bob: httpx.Client
) -> None:
    chat = a_chat(alice)
    token = alice.post(f"/api/chats/{chat}/share").json()["token"]
    admin = signed_in(hearth, create_user(hearth, admin=True))
    for intruder in (bob, admin):
        attempts = [
            intruder.post(f"/api/chats/{chat}/share"),
            intruder.get(f"/api/chats/{chat}/share"),
            intruder.delete(f"/api/chats/{chat}/share"),
            intruder.post(f"/api/chats/{uuid.uuid4()}/share"),
        ]
        assert [a.status_code for a in attempts] == [404] * len(attempts)
    assert bob.get(f"/api/shared/{token}").status_code == 200  # still live
    assert alice.get(f"/api/chats/{chat}/share").json()["token"] == token


def test_signed_out_nobody_reads_or_shares(hearth: Running, alice: httpx.Client) -> None:
    chat = a_chat(alice)
    token = alice.post(f"/api/chats/{chat}/share").json()["token"]
    with httpx.Client(base_url=hearth.url) as anonymous:
        read = anonymous.get(f"/api/shared/{token}")
        assert read.status_code == 401 and "reset" not in read.text
        assert anonymous.post(f"/api/chats/{chat}/share").status_code == 401
        assert anonymous.delete(f"/api/chats/{chat}/share").status_code == 401
        # The page sends a visitor to sign in, and back to the link afterwards.
        page = anonymous.get(f"/s/{token}", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == f"/login?next=/s/{token}"


def test_an_empty_chat_has_nothing_to_share(alice: httpx.Client) -> None:
    chat = alice.post("/api/chats", json={}).json()["id"]
    refused = alice.post(f"/api/chats/{chat}/share")
    assert refused.status_code == 400 and "nothing to share" in refused.json()["error"]["message"]
