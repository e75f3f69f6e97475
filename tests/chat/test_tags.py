"""Chat tags over HTTP on the real Hearth and PostgreSQL: added, deduplicated
case-insensitively, removed; the list filtered by a tag (also with `q`, `tag:` terms and
the archived list); the caller's tags counted; limits a 400 naming them; one user's tags
never show, count or filter another's chats; exports carry tags and imports (Hearth's and
Open WebUI's) restore them. And the archived list is searchable."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from hearth.chat.tags import split_query
from tests._accounts import create_user, signed_in
from tests._server import Running

MODEL = "smollm2-135m-instruct"
EXPORT = Path(__file__).parent / "openwebui_export.json"


@pytest.fixture
def alice(hearth: Running) -> httpx.Client:
    return signed_in(hearth, create_user(hearth))


@pytest.fixture
def bob(hearth: Running) -> httpx.Client:
    return signed_in(hearth, create_user(hearth))


def new_chat(client: httpx.Client, title: str) -> str:
    return client.post("/api/chats", json={"title": title}).json()["id"]


def tag(client: httpx.Client, chat_id: str, tags: Any) -> httpx.Response:
    return client.patch(f"/api/chats/{chat_id}", json={"tags": tags})


def listed(client: httpx.Client, **params: Any) -> list[str]:
    answer = client.get("/api/chats", params=params)
    assert answer.status_code == 200, answer.text
    return [c["id"] for c in answer.json()["items"]]


def counts(client: httpx.Client, **params: Any) -> list[tuple[str, int]]:
    answer = client.get("/api/chats/tags", params=params)
    assert answer.status_code == 200, answer.text
    return [(t["name"], t["chats"]) for t in answer.json()]


def test_tags_are_added_deduplicated_filtered_counted_and_removed(alice: httpx.Client) -> None:
    older, newer, other = (new_chat(alice, t) for t in ("Budget", "Offsite", "Recipes"))
    assert counts(alice) == []
    before = alice.get(f"/api/chats/{older}").json()

    # Trimmed, inner spaces evened, one tag per case-insensitive name (first spelling).
    answer = tag(alice, older, ["  Work ", "work", "home   office", "WORK"])
    assert answer.status_code == 200, answer.text
    assert answer.json()["tags"] == ["home office", "Work"]  # alphabetical
    # Another chat tagged "WORK" takes the spelling the owner already uses.
    assert tag(alice, newer, ["WORK"]).json()["tags"] == ["Work"]
    chat = alice.get(f"/api/chats/{older}").json()
    assert chat["tags"] == ["home office", "Work"]
    assert chat["updated_at"] == before["updated_at"]  # tagging does not move it in the list
    assert listed(alice)[:3] == [other, newer, older]
    items = {c["id"]: c["tags"] for c in alice.get("/api/chats").json()["items"]}
    assert (items[older], items[newer], items[other]) == (["home office", "Work"], ["Work"], [])

    assert counts(alice) == [("home office", 1), ("Work", 2)]
    assert listed(alice, tag="work") == [newer, older]  # any case, newest first
    assert listed(alice, tag="Home Office") == [older]
    assert listed(alice, tag="holiday") == []
    # Combined with a search, and as `tag:` terms inside it.
    assert listed(alice, tag="work", q="Budget") == [older]
    assert listed(alice, q="tag:WORK") == [newer, older]
    assert listed(alice, q='tag:"home office" Bud') == [older]
    assert listed(alice, q="Recipes tag:work") == []

    # Archived chats keep their tags, filtered and counted apart.
    alice.patch(f"/api/chats/{newer}", json={"archived": True})
    assert counts(alice) == [("home office", 1), ("Work", 1)]
    assert counts(alice, archived=True) == [("Work", 1)]
    assert listed(alice, tag="work") == [older]
    assert listed(alice, tag="work", archived=True) == [newer]
    assert listed(alice, tag="work", archived=True, q="Off") == [newer]
    assert listed(alice, tag="work", archived=True, q="Budget") == []

    # Removing: the whole set is sent; an empty one removes them all.
    assert tag(alice, older, ["Work"]).json()["tags"] == ["Work"]
    assert counts(alice) == [("Work", 1)]
    assert tag(alice, older, []).json()["tags"] == []
    assert counts(alice) == [] and listed(alice, tag="work") == []
    # Other changes leave the tags alone; deleting the chat deletes them.
    renamed = alice.patch(f"/api/chats/{newer}", json={"title": "Offsite 2027"}).json()
    assert renamed["tags"] == ["Work"]
    assert alice.delete(f"/api/chats/{newer}").status_code == 204
    assert counts(alice, archived=True) == []


def test_tag_limits_are_a_400_naming_them(alice: httpx.Client) -> None:
    chat = new_chat(alice, "Limits")

    def refused(tags: Any, param: str | None, words: str) -> None:
        answer = tag(alice, chat, tags)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert error["param"] == param and words in error["message"], error

    refused([f"t{n}" for n in range(21)], "tags", "at most 20 tags (21 given)")
    refused(["ok", "x" * 41], "tags.1", "at most 40 characters")
    refused(["   "], "tags.0", "cannot be empty")
    refused(["a\x07b"], "tags.0", "control characters")
    refused(None, None, "tags cannot be null")
    refused("work", "tags", "valid list")
    refused([f"t{n}" for n in range(201)], "tags", "at most 200 items")
    assert alice.get(f"/api/chats/{chat}").json()["tags"] == []  # nothing of them kept
    # Twenty, each also spelt another way, are twenty tags: the limit counts them once.
    many = [f"T{n}" for n in range(20)] + [f"t{n}" for n in range(20)]
    answer = tag(alice, chat, many)
    assert answer.status_code == 200 and len(answer.json()["tags"]) == 20
    assert tag(alice, chat, ["x" * 40]).status_code == 200
    too_long = alice.get("/api/chats", params={"tag": "x" * 201})
    assert too_long.status_code == 400 and too_long.json()["error"]["param"] == "query.tag"


def test_one_users_tags_never_reach_another_users_chats(
    alice: httpx.Client, bob: httpx.Client
) -> None:
    hers = new_chat(alice, "Hers")
    tag(alice, hers, ["secret"])
    his = new_chat(bob, "His")
    # Tagging another user's chat: not found, and nothing changes.
    assert tag(bob, hers, ["mine"]).status_code == 404
    assert alice.get(f"/api/chats/{hers}").json()["tags"] == ["secret"]
    # Her tags are not his: not listed, counted, nor matching his chats by name.
    assert counts(bob) == []
    assert listed(bob, tag="secret") == [] and listed(bob, q="tag:secret") == []
    assert tag(bob, his, ["SECRET"]).json()["tags"] == ["SECRET"]  # not her spelling
    assert counts(bob) == [("SECRET", 1)] and counts(alice) == [("secret", 1)]
    assert listed(bob, tag="secret") == [his]
    assert listed(alice, tag="secret") == [hers]


def test_archived_chats_are_listed_apart_and_searchable(alice: httpx.Client) -> None:
    def made(title: str, text: str, archived: bool) -> str:
        body = {
            "title": title,
            "model": MODEL,
            "archived": archived,
            "messages": [{"role": "user", "content": text}],
        }
        answer = alice.post("/api/chats/import", json=body)
        assert answer.status_code == 201, answer.text
        return answer.json()["id"]

    notes = made("Lighthouse notes", "The keeper climbs to Zanzibar light.", archived=True)
    plan = made("Garden plan", "Tomatoes by the wall.", archived=True)
    draft = made("Lighthouse draft", "A lamp for Zanzibar.", archived=False)
    assert listed(alice, archived=True, q="Lighthouse") == [notes]  # by title
    assert listed(alice, archived=True, q="zanzibar") == [notes]  # by a message's words
    assert listed(alice, archived=True, q="tomatoes") == [plan]
    assert listed(alice, q="zanzibar") == [draft]  # the others never mix with them
    assert listed(alice, archived=True, q="nothing like it") == []
    # Unarchived, it is found among the others.
    alice.patch(f"/api/chats/{plan}", json={"archived": False})
    assert listed(alice, q="tomatoes") == [plan]
    assert listed(alice, archived=True, q="tomatoes") == []


def test_exports_carry_tags_and_imports_restore_them(alice: httpx.Client) -> None:
    chat = new_chat(alice, "Exported")
    tag(alice, chat, ["Travel", "home office"])
    exported = alice.get(f"/api/chats/{chat}/export").json()
    assert exported["tags"] == ["home office", "Travel"]
    copy_ = alice.post("/api/chats/import", json=exported)
    assert copy_.status_code == 201, copy_.text
    assert copy_.json()["tags"] == ["home office", "Travel"]
    assert alice.get(f"/api/chats/{copy_.json()['id']}/export").json() == exported
    assert counts(alice) == [("home office", 2), ("Travel", 2)]
    # An import's tags are normalised and bounded like any others.
    spelt = alice.post("/api/chats/import", json={**exported, "tags": ["TRAVEL", " new  one"]})
    assert spelt.json()["tags"] == ["new one", "Travel"]
    too_many = [str(n) for n in range(21)]
    refused = alice.post("/api/chats/import", json={**exported, "tags": too_many})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tags"


def test_open_webuis_tags_are_imported(alice: httpx.Client) -> None:
    report = alice.post("/api/chats/import", content=EXPORT.read_bytes()).json()
    sourdough, outline = report["chats"][:2]
    assert alice.get(f"/api/chats/{sourdough['id']}").json()["tags"] == ["baking", "home"]
    assert not any("tag" in line for line in sourdough["not_imported"])
    assert alice.get(f"/api/chats/{outline['id']}").json()["tags"] == []
    assert counts(alice) == [("baking", 1), ("home", 1)]
    assert listed(alice, tag="baking") == [sourdough["id"]]

    # Older files keep them in `chat.tags` (names or {"name": ...}), merged with meta's;
    # what Hearth cannot keep is named in the chat's result.
    one = copy.deepcopy(json.loads(EXPORT.read_text())[0])
    one["meta"]["tags"] = ["Baking", *(f"t{n}" for n in range(25)), "x" * 50]
    one["chat"]["tags"] = [{"name": "Bread"}, 7]
    result = alice.post("/api/chats/import", json=[one]).json()["chats"][0]
    kept = alice.get(f"/api/chats/{result['id']}").json()["tags"]
    assert len(kept) == 20 and "baking" in kept and "Bread" not in kept  # her spelling
    assert [line for line in result["not_imported"] if "tags" in line] == [
        "tags Hearth cannot keep (at most 20 a chat, each at most 40 characters): "
        f"t19, t20, t21, t22, t23, t24, {'x' * 50}, Bread, 7"
    ]
    one["meta"]["tags"], one["chat"]["tags"] = [], [{"name": "Bread"}, "rye"]
    result = alice.post("/api/chats/import", json=one).json()["chats"][0]
    assert alice.get(f"/api/chats/{result['id']}").json()["tags"] == ["Bread", "rye"]


def test_tag_terms_are_split_from_a_search() -> None:
    assert split_query("lighthouse") == ("lighthouse", [])
    assert split_query('tag:work keeper tag:"home office"') == ("keeper", ["work", "home office"])
    assert split_query("TAG:Work") == ("", ["Work"])
    assert split_query("hashtag:x tag:") == ("hashtag:x tag:", [])
