"""Presets over HTTP against the running Hearth: saved, listed, changed and deleted by their
owner; shared with a group (its members see and use one, others get a 404, only the owner
or an administrator changes it); a chat started from one takes its model, settings and
collections (the real SmolLM2 model answers with the preset's system prompt)."""

from __future__ import annotations

import uuid

import pytest

from hearth.accounts.users import UserPublic
from tests._accounts import create_user, signed_in
from tests._server import Running
from tests.chat.test_chats import send

QUESTION = "Write a very long story about the sea, at least a thousand words."
PERSONA = "You are a pirate who answers in long, florid sentences. " * 10


@pytest.fixture
def model(hearth: Running) -> str:
    return next(r.model.name for r in hearth.app.state.routes.all() if r.model.type == "chat")


def group_of(hearth: Running, *members: UserPublic) -> str:
    users = hearth.app.state.users
    group = hearth.call(users.create_group(f"g-{uuid.uuid4().hex[:8]}"))
    for member in members:
        hearth.call(users.set_member(group.id, member.id, member=True))
    return group.id


def test_a_preset_is_saved_listed_changed_and_deleted(hearth: Running, model: str) -> None:
    alice = signed_in(hearth, create_user(hearth))
    body = {
        "name": "  Pirate  ",
        "description": "Answers as a pirate.",
        "model": model,
        "system_prompt": PERSONA,
        "temperature": 0.2,
        "max_tokens": 8,
    }
    created = alice.post("/api/presets", json=body)
    assert created.status_code == 201, created.text
    preset = created.json()
    assert preset["name"] == "Pirate" and preset["model"] == model
    assert (preset["owned"], preset["editable"], preset["group_ids"]) == (True, True, [])
    assert alice.get(f"/api/presets/{preset['id']}").json() == preset
    assert [p["id"] for p in alice.get("/api/presets").json()] == [preset["id"]]

    changed = alice.patch(
        f"/api/presets/{preset['id']}", json={"name": "Corsair", "system_prompt": None}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "Corsair" and changed.json()["system_prompt"] is None
    assert changed.json()["temperature"] == 0.2  # left out: kept

    # A base model not served here is a 400 naming it; other nonsense names its field.
    for bad in ({"model": "gpt-9"},):
        refused = alice.post("/api/presets", json={**body, **bad})
        assert refused.status_code == 400 and "gpt-9" in refused.text, refused.text
        assert alice.patch(f"/api/presets/{preset['id']}", json=bad).status_code == 400
    for field, value in (
        ("temperature", 3),
        ("max_tokens", 0),
        ("name", " "),
        ("name", "x" * 201),
        ("top_p", 0.5),  # nothing a preset cannot hold is dropped silently
        ("collection_ids", ["not-a-uuid"]),
    ):
        refused = alice.post("/api/presets", json={**body, field: value})
        assert refused.status_code == 400 and field in refused.text, (field, refused.text)
    refused = alice.patch(f"/api/presets/{preset['id']}", json={"name": None})
    assert refused.status_code == 400 and "name" in refused.text
    # Collections: only those its creator may read (another user's is not found).
    bobs = signed_in(hearth, create_user(hearth)).post("/api/collections", json={"name": "b"})
    refused = alice.post("/api/presets", json={**body, "collection_ids": [bobs.json()["id"]]})
    assert refused.status_code == 404, refused.text

    assert alice.delete(f"/api/presets/{preset['id']}").status_code == 204
    assert alice.get(f"/api/presets/{preset['id']}").status_code == 404
    assert alice.get("/api/presets").json() == []


def test_a_preset_shared_with_a_group_is_for_its_members(hearth: Running, model: str) -> None:
    ada, bob, carol = (create_user(hearth) for _ in range(3))
    team = group_of(hearth, ada, bob)
    elsewhere = group_of(hearth, carol)
    owner, member, outsider = (signed_in(hearth, u) for u in (ada, bob, carol))
    body = {"name": "Team helper", "model": model, "group_ids": [team]}
    created = owner.post("/api/presets", json=body)
    assert created.status_code == 201, created.text
    preset = created.json()
    assert preset["group_ids"] == [team]
    path = f"/api/presets/{preset['id']}"

    seen = member.get("/api/presets").json()
    assert [(p["id"], p["owned"], p["editable"]) for p in seen] == [(preset["id"], False, False)]
    assert member.get(path).status_code == 200
    # A member uses it but does not change or delete it.
    assert member.patch(path, json={"name": "Mine now"}).status_code == 403
    assert member.delete(path).status_code == 403
    page = member.get(f"/presets/{preset['id']}")
    assert page.status_code == 200 and "only its owner changes it" in page.text
    assert "Save preset" not in page.text
    form = {"csrf_token": member.headers["x-csrf-token"], "name": "Mine now", "model": model}
    for action in ("save", "delete"):
        posted = member.post(f"/presets/{preset['id']}", data={**form, "action": action})
        assert posted.status_code == 403, (action, posted.status_code)
    assert owner.get(path).json()["name"] == "Team helper"
    # Outside the group it does not exist, nor its page.
    assert outsider.get("/api/presets").json() == []
    for response in (
        outsider.get(path),
        outsider.get(f"/presets/{preset['id']}"),
        outsider.patch(path, json={"name": "x"}),
        outsider.delete(path),
        outsider.post("/api/chats", json={"preset_id": preset["id"]}),
    ):
        assert response.status_code == 404, response.text
    # One shares with one's own groups only.
    refused = owner.post("/api/presets", json={**body, "group_ids": [elsewhere]})
    assert refused.status_code == 400 and "group_ids" in refused.text, refused.text
    # An administrator (in no group) may change it; the owner may stop sharing it.
    admin = signed_in(hearth, create_user(hearth, admin=True))
    assert admin.patch(path, json={"description": "Kept tidy"}).status_code == 200
    assert owner.get(path).json()["description"] == "Kept tidy"
    assert owner.patch(path, json={"group_ids": []}).json()["group_ids"] == []
    assert member.get(path).status_code == 404
    assert member.get("/api/presets").json() == []
    # A member becomes one when it is shared again.
    assert owner.patch(path, json={"group_ids": [team]}).status_code == 200
    assert member.get(path).status_code == 200
    assert admin.delete(path).status_code == 204
    assert owner.get(path).status_code == 404


def test_a_chat_from_a_preset_answers_with_its_settings(hearth: Running, model: str) -> None:
    ada = signed_in(hearth, create_user(hearth))
    collection = ada.post("/api/collections", json={"name": "notes"}).json()
    body = {
        "name": "Pirate",
        "model": model,
        "system_prompt": PERSONA,
        "temperature": 0.2,
        "max_tokens": 6,
        "collection_ids": [collection["id"]],
    }
    preset = ada.post("/api/presets", json=body).json()
    started = ada.post("/api/chats", json={"preset_id": preset["id"]})
    assert started.status_code == 201, started.text
    chat = started.json()
    assert (chat["model"], chat["system_prompt"], chat["temperature"], chat["max_tokens"]) == (
        model,
        PERSONA,
        0.2,
        6,
    )
    assert chat["collection_ids"] == [collection["id"]] and chat["preset_id"] == preset["id"]
    assert chat["notes"] == []

    answer = send(ada, chat["id"], QUESTION)[-1]
    assert answer[0] == "done", answer
    plain = ada.post("/api/chats", json={"max_tokens": 6}).json()
    assert plain["preset_id"] is None and plain["max_tokens"] == 6
    without = send(ada, plain["id"], QUESTION)[-1]
    assert without[0] == "done", without
    # The preset's system prompt reached the model: far more prompt tokens than without it;
    # and its answer length held.
    message = answer[1]["message"]
    assert message["prompt_tokens"] > without[1]["message"]["prompt_tokens"] + 80
    assert 0 < message["completion_tokens"] <= 6

    # A field sent beside the preset wins, null too.
    chosen = ada.post(
        "/api/chats",
        json={"preset_id": preset["id"], "system_prompt": None, "max_tokens": 9, "title": "Mine"},
    ).json()
    assert (chosen["system_prompt"], chosen["max_tokens"], chosen["temperature"]) == (None, 9, 0.2)
    assert chosen["title"] == "Mine" and chosen["preset_id"] == preset["id"]

    # Deleting the preset leaves its chats as they were, no longer pointing at it.
    assert ada.delete(f"/api/presets/{preset['id']}").status_code == 204
    kept = ada.get(f"/api/chats/{chat['id']}").json()
    assert kept["preset_id"] is None
    assert (kept["system_prompt"], kept["max_tokens"]) == (PERSONA, 6)
    assert kept["collection_ids"] == [collection["id"]]
    gone = ada.post("/api/chats", json={"preset_id": preset["id"]})
    assert gone.status_code == 404, gone.text


def test_collections_a_member_may_not_read_are_left_out_and_said(
    hearth: Running, model: str
) -> None:
    ada_user, bob_user = create_user(hearth), create_user(hearth)
    team = group_of(hearth, ada_user, bob_user)
    ada, bob = signed_in(hearth, ada_user), signed_in(hearth, bob_user)
    private = ada.post("/api/collections", json={"name": "private"}).json()["id"]
    shared = ada.post("/api/collections", json={"name": "shared"}).json()["id"]
    granted = ada.put(f"/api/collections/{shared}/grants", json={"principal": f"group:{team}"})
    assert granted.status_code == 204, granted.text
    body = {"name": "Docs", "model": model, "collection_ids": [private, shared]}
    preset = ada.post("/api/presets", json={**body, "group_ids": [team]}).json()

    chat = bob.post("/api/chats", json={"preset_id": preset["id"]})
    assert chat.status_code == 201, chat.text
    assert chat.json()["collection_ids"] == [shared]
    [note] = chat.json()["notes"]
    assert private in note and shared not in note
    # Its owner's chat keeps both; collections sent beside it are checked as any chat's.
    assert ada.post("/api/chats", json={"preset_id": preset["id"]}).json()["collection_ids"] == [
        private,
        shared,
    ]
    explicit = bob.post("/api/chats", json={"preset_id": preset["id"], "collection_ids": [private]})
    assert explicit.status_code == 404, explicit.text
    mine = bob.post("/api/chats", json={"preset_id": preset["id"], "collection_ids": []}).json()
    assert (mine["collection_ids"], mine["notes"]) == ([], [])


def test_an_account_deleted_takes_its_presets(hearth: Running, model: str) -> None:
    """Others' chats started from them stay, no longer pointing at them."""
    ada, bob = create_user(hearth), create_user(hearth)
    team = group_of(hearth, ada, bob)
    owner, member = signed_in(hearth, ada), signed_in(hearth, bob)
    body = {"name": "p", "model": model, "max_tokens": 7, "group_ids": [team]}
    preset = owner.post("/api/presets", json=body).json()
    chat = member.post("/api/chats", json={"preset_id": preset["id"]}).json()
    assert chat["preset_id"] == preset["id"]
    admin = signed_in(hearth, create_user(hearth, admin=True))
    assert admin.delete(f"/api/admin/users/{ada.id}").status_code == 204
    assert admin.get(f"/api/presets/{preset['id']}").status_code == 404
    kept = member.get(f"/api/chats/{chat['id']}").json()
    assert (kept["preset_id"], kept["max_tokens"]) == (None, 7)
