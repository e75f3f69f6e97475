"""Authenticated pages cost at most three database round trips (Open WebUI: 60-100 per
reload, their issue #10807), however long the chat and however many chats the user has."""

from __future__ import annotations

import time

from hearth.accounts.principal import Principal
from hearth.chat.schemas import ChatCreate
from tests._accounts import create_user, signed_in
from tests._server import Running


def statements(server: Running, client, path: str) -> int:  # type: ignore[no-untyped-def]
    time.sleep(2.1)  # let the session and settings caches expire: count a cold page
    database = server.app.state.database
    before = database.statements
    response = client.get(path)
    assert response.status_code == 200, response.text
    return database.statements - before


def test_pages_take_at_most_three_round_trips(hearth: Running) -> None:
    user = create_user(hearth)
    principal = Principal(user.id)
    chats = hearth.app.state.chats
    for i in range(60):
        chat = hearth.call(chats.create(principal, ChatCreate(title=f"c{i}"), model="m"))
    for i in range(120):
        hearth.call(chats.add_message(principal, chat.id, role="user", content=f"m{i}"))
    client = signed_in(hearth, user)
    for path in (f"/c/{chat.id}", "/", f"/c/{chat.id}?before=60", "/?q=c1"):
        # At least the session and the chat list are read: the count is real.
        assert 2 <= statements(hearth, client, path) <= 3, path
