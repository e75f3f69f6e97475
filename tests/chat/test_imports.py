"""Importing chats: Open WebUI's "Export chats" file (several chats: one with branches, kept
as a tree, one archived in a folder, one Hearth cannot import, one from an older version)
through the API, each chat with its own result; Hearth's own export still round-trips;
limits are a 400 or a 413, never a 500; and the tree's conversion on its own."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth.chat.openwebui import ImportModels, NotImportable, from_open_webui
from tests._accounts import create_user, signed_in
from tests._server import Running

EXPORT = Path(__file__).parent / "openwebui_export.json"
MODEL = "smollm2-135m-instruct"


def open_webui_export() -> list[dict[str, Any]]:
    return json.loads(EXPORT.read_text())


@pytest.fixture
def alice(hearth: Running) -> httpx.Client:
    return signed_in(hearth, create_user(hearth))


def messages(client: httpx.Client, chat_id: str) -> list[dict[str, Any]]:
    return client.get(f"/api/chats/{chat_id}/messages", params={"limit": 500}).json()["items"]


def test_open_webuis_export_is_imported_chat_by_chat(alice: httpx.Client) -> None:
    answer = alice.post("/api/chats/import", content=EXPORT.read_bytes())
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["format"] == "open-webui"
    assert (report["imported"], report["failed"]) == (3, 1)
    sourdough, outline, trip, haiku = report["chats"]
    assert [c["index"] for c in report["chats"]] == [1, 2, 3, 4]

    # Branches: every one is kept; the one shown last (ending at currentId) is shown.
    assert (sourdough["messages"], sourdough["left_out"]) == (7, 0)
    assert not any("tags" in line for line in sourdough["not_imported"])  # imported
    assert "settings: top_p" in sourdough["not_imported"]
    assert "sources of 1 message" in sourdough["not_imported"]
    assert any("llama3.1:8b" in note and MODEL in note for note in sourdough["notes"])
    kept = messages(alice, sourdough["id"])
    assert [m["content"][:24] for m in kept] == [
        "How do I keep a sourdoug",
        "Feed it equal weights of",
        "And if I go on holiday f",
        "Feed it, let it rise an ",
    ]
    assert kept[1]["model"] == "llama3.1:8b" and kept[0]["model"] is None
    # The two answers to the first question, and the two versions of the second: 2/2 each,
    # in Open WebUI's order (childrenIds); the other versions a select away.
    assert [(m["sibling_index"], m["siblings"]) for m in kept] == [(1, 1), (2, 2), (1, 2), (1, 1)]
    shown = alice.post(
        f"/api/chats/{sourdough['id']}/messages/{kept[2]['next_sibling']}/select"
    ).json()["items"]
    assert [m["content"][:12] for m in shown][2:] == ["What if I fo", "It will smel"]
    first = alice.post(
        f"/api/chats/{sourdough['id']}/messages/{kept[1]['previous_sibling']}/select"
    ).json()["items"]
    assert [m["content"][:12] for m in first] == ["How do I kee", "Feed it flou"]
    chat = alice.get(f"/api/chats/{sourdough['id']}").json()
    assert chat["pinned"] is True and chat["archived"] is False
    assert chat["tags"] == ["baking", "home"]
    assert (chat["model"], chat["temperature"]) == (MODEL, 0.7)
    assert chat["updated_at"].startswith("2024-12-05T09:18:50")  # its place in the list
    assert datetime.fromisoformat(kept[0]["created_at"]).timestamp() == 1733390000

    # Archived, in a folder, rated, with a file and its own system prompt.
    assert outline["not_imported"] == [
        "its folder",
        "attached files of 1 message",
        "ratings and feedback of 1 message",
    ]
    assert outline["notes"] == []  # its model is served here
    archived = alice.get("/api/chats", params={"archived": True}).json()["items"]
    assert outline["id"] in [c["id"] for c in archived]
    chat = alice.get(f"/api/chats/{outline['id']}").json()
    assert chat["system_prompt"] == "Answer as a concise analyst." and chat["max_tokens"] == 512

    # The bad chat: a readable reason, and nothing of it written.
    assert trip["id"] is None and trip["error"] == (
        "chat 3 'Trip ideas': a message has role 'tool', which Hearth cannot import"
    )
    listed = alice.get("/api/chats", params={"q": "Trip"}).json()["items"]
    assert listed == []
    assert alice.get("/api/chats", params={"q": "Lyon"}).json()["items"] == []

    # An older file's flat list; its failed answer keeps its status and error.
    assert (haiku["messages"], haiku["left_out"]) == (2, 0)
    failed = messages(alice, haiku["id"])[1]
    assert failed["status"] == "failed" and "not found" in failed["error"]

    # The list is ordered by their activity there: newest first, the pinned one on top.
    order = [c["id"] for c in alice.get("/api/chats").json()["items"]]
    assert order.index(sourdough["id"]) < order.index(haiku["id"])


def test_one_open_webui_chat_alone_and_bad_elements_are_reported(alice: httpx.Client) -> None:
    one = open_webui_export()[0]
    alone = alice.post("/api/chats/import", json=one)  # a chat object, not a list
    assert alone.status_code == 200 and alone.json()["imported"] == 1
    looped = copy.deepcopy(one)
    looped["chat"]["history"]["messages"]["q1"]["parentId"] = "a2"
    odd = copy.deepcopy(one)
    odd["chat"]["history"]["messages"]["q1"]["content"] = [{"type": "image_url"}]
    mixed = alice.post("/api/chats/import", json=[5, looped, odd, one]).json()
    assert [c["error"] for c in mixed["chats"][:3]] == [
        "chat 1 '(untitled)': it is not an Open WebUI chat (an object with a 'chat' object)",
        "chat 2 'Sourdough starter': its message history loops (a message is its own ancestor)",
        "chat 3 'Sourdough starter': message 1 is not text",
    ]
    assert mixed["chats"][3]["id"] is not None and mixed["imported"] == 1


def test_hearths_own_export_still_round_trips(alice: httpx.Client) -> None:
    made = alice.post("/api/chats/import", content=EXPORT.read_bytes()).json()["chats"][0]["id"]
    alice.patch(f"/api/chats/{made}", json={"title": "Starter", "system_prompt": "Be brief."})
    exported = alice.get(f"/api/chats/{made}/export").json()
    assert exported["pinned"] is True and exported["messages"][1]["model"] == "llama3.1:8b"
    copy_ = alice.post("/api/chats/import", json=exported)
    assert copy_.status_code == 201, copy_.text
    again = alice.get(f"/api/chats/{copy_.json()['id']}/export").json()
    assert again == exported
    # A field Hearth's export does not have is refused (it is our format), naming it.
    refused = alice.post("/api/chats/import", json={**exported, "colour": "red"})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "colour"


def test_limits_are_a_clear_400_or_413(alice: httpx.Client) -> None:
    def refused(body: bytes, status: int, words: str) -> None:
        answer = alice.post("/api/chats/import", content=body)
        assert answer.status_code == status, answer.text
        assert words in answer.json()["error"]["message"], answer.text

    refused(b"[]", 400, "no chats")
    refused(b"{not json", 400, "could not parse")
    refused(b"[1, 2, 3]", 400, "neither a Hearth chat export")
    refused(b'[{"mapping": {}}]', 400, "ChatGPT")
    refused(json.dumps([{"chat": {}}] * 2001).encode(), 400, "at most 2,000")
    # Larger than the API's bodies (64 KiB here) but within the import's own limit
    # (256 KiB here): imported; past it, a 413 before anything is read.
    chats = open_webui_export()[:1] * 30
    big = json.dumps(chats).encode()
    assert 64 * 1024 < len(big) < 256 * 1024
    assert alice.post("/api/chats/import", content=big).json()["imported"] == 30
    refused(json.dumps(chats * 3).encode(), 413, "exceeds the limit")


def conversion(raw: dict[str, Any]) -> Any:
    return from_open_webui(raw, ImportModels(served=frozenset({MODEL}), default=MODEL))


def test_the_branch_shown_last_is_found_even_without_a_current_id() -> None:
    raw = open_webui_export()[0]
    history = raw["chat"]["history"]
    history["currentId"] = "a2e"  # the edited question's answer
    got = conversion(copy.deepcopy(raw))
    # Every message, each after its parent (depth first, siblings in childrenIds order).
    assert [(m.content[:8], m.parent) for m in got.export.messages] == [
        ("How do I", None),
        ("Feed it ", 1),  # a1a
        ("Feed it ", 1),  # a1b
        ("And if I", 3),
        ("Feed it,", 4),
        ("What if ", 3),
        ("It will ", 6),
    ]
    assert got.export.current == 7
    assert [m.content[:12] for m in got.export.path()] == [
        "How do I kee",
        "Feed it equa",
        "What if I fo",
        "It will smel",
    ]
    history["currentId"] = "gone"  # no usable current message: the newest leaf
    got = conversion(copy.deepcopy(raw))
    assert got.export.path()[-1].content.startswith("Feed it, let it rise")
    assert len(got.export.messages) == 7 and "no current message" in got.notes[0]
    history["messages"]["q2"]["parentId"] = "missing"  # a broken link: a first message
    got = conversion(copy.deepcopy(raw))
    assert [m.role for m in got.export.path()] == ["user", "assistant"]
    assert [m.parent for m in got.export.messages].count(None) == 2
    assert any("parent is missing" in note for note in got.notes)
    # No childrenIds (or null): siblings in the order of time (the edit came first here).
    raw = open_webui_export()[0]
    for message in raw["chat"]["history"]["messages"].values():
        message["childrenIds"] = None
    assert [m.content[:12] for m in conversion(raw).export.messages][3:] == [
        "What if I fo",
        "It will smel",
        "And if I go ",
        "Feed it, let",
    ]
    # Milliseconds and seconds both read as the same moment.
    raw = open_webui_export()[0]
    raw["created_at"] *= 1000
    assert conversion(raw).export.created_at.timestamp() == 1733390000
    with pytest.raises(NotImportable, match="role 'system'"):
        raw["chat"]["history"]["messages"]["q1"]["role"] = "system"
        conversion(raw)
