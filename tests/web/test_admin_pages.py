"""Administration pages over HTTP: usage charts (SVG drawn on the server) that count a web
chat under its user and a /v1 call under its key; forms that need their CSRF token."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from pydantic import SecretStr

from hearth.config import Settings
from hearth.server import create_app
from tests._accounts import api_key, create_user, signed_in
from tests._server import Running, running
from tests.conftest import PostgresForTests


@pytest.fixture(scope="module")
def quiet(
    hearth_settings: Settings, postgres: PostgresForTests, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """A Hearth of this module's own, on a fresh database: the usage page lists the top ten
    users, and on the session's shared instance the earlier tests' users fill it."""
    settings = hearth_settings.model_copy(
        update={
            "database_url": SecretStr(postgres.new_database()),
            "data_dir": tmp_path_factory.mktemp("q"),
        }
    )
    with running(create_app(settings)) as server:
        yield server


def test_usage_page_counts_chats_per_user_and_calls_per_key(quiet: Running) -> None:
    hearth = quiet
    user = create_user(hearth)
    client = signed_in(hearth, user)
    chat = client.post("/api/chats", json={}).json()
    with client.stream(
        "POST", f"/api/chats/{chat['id']}/messages", json={"content": "Say hi."}
    ) as response:
        assert response.status_code == 200
        response.read()
    key = api_key(hearth, user)
    sdk = openai.OpenAI(base_url=f"{hearth.url}/v1", api_key=key, max_retries=0)
    sdk.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    admin = signed_in(hearth, create_user(hearth, admin=True))
    deadline = time.monotonic() + 10  # usage rows are written in batches, every second
    while True:
        page = admin.get("/admin/usage", params={"days": 7})
        assert page.status_code == 200
        row = re.search(rf"<td>{re.escape(user.email)}</td><td>(\d+)</td>", page.text)
        if row and int(row.group(1)) >= 2:
            break
        assert time.monotonic() < deadline, "the user's usage never showed"
        time.sleep(0.3)
    # requests and tokens drawn; the unpriced model's cost is said, not drawn as zeros
    assert page.text.count('<svg class="chart"') == 2 and "No priced usage yet" in page.text
    assert "smollm2-135m-instruct" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    # Users do not see it.
    assert client.get("/admin/usage").status_code == 403
    assert httpx.get(f"{hearth.url}/admin/usage", follow_redirects=False).status_code == 303


def test_admin_forms_refuse_a_missing_csrf_token(hearth: Running) -> None:
    admin = signed_in(hearth, create_user(hearth, admin=True))
    victim = create_user(hearth)
    forged = admin.post("/admin", data={"action": "disable", "user_id": victim.id})
    assert forged.status_code == 403
    assert hearth.call(hearth.app.state.users.get(victim.id)).status == "active"
    page = admin.get("/admin")
    assert "smollm2-135m-instruct" in page.text and "healthy" in page.text  # deployments
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = admin.post(
        "/admin", data={"action": "disable", "user_id": victim.id, "csrf_token": token}
    )
    assert done.status_code == 303
    assert hearth.call(hearth.app.state.users.get(victim.id)).status == "disabled"


def test_admins_see_every_collection(hearth: Running) -> None:
    """A collection nobody shared (here a user's own) is listed for admins, page and API,
    with its owner's email and size; users get 403."""
    owner = create_user(hearth)
    client = signed_in(hearth, owner)
    made = client.post("/api/collections", json={"name": "private-notes"})
    assert made.status_code == 201, made.text
    admin = signed_in(hearth, create_user(hearth, admin=True))
    page = admin.get("/admin/collections")
    assert page.status_code == 200
    assert re.search(
        rf"<td>private-notes</td><td>{re.escape(owner.email)}</td><td>0</td><td>0</td>", page.text
    )
    listed = admin.get("/api/admin/collections").json()
    (mine,) = [c for c in listed if c["id"] == made.json()["id"]]
    assert (mine["name"], mine["owner_id"], mine["documents"], mine["chunks"]) == (
        "private-notes",
        owner.id,
        0,
        0,
    )
    assert client.get("/admin/collections").status_code == 403
    assert client.get("/api/admin/collections").status_code == 403
    # The key list names owners by email, not by id.
    prefix = "-".join(api_key(hearth, owner).split("-")[:2])
    keys = admin.get("/admin/keys").text
    assert re.search(rf"<code>{prefix}-…</code></td><td>{re.escape(owner.email)}</td>", keys)
