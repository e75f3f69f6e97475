"""Accounts over HTTP against a real Hearth on a fresh database: the first sign-up becomes
the admin, later ones wait for approval, sessions are HttpOnly cookies that can be revoked,
every unsafe request made with a cookie needs the CSRF token, sign-in is rate-limited, and
passwords are stored as Argon2id hashes."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, text

from hearth.accounts.models import User
from hearth.accounts.principal import Principal
from hearth.accounts.users import UserUpdate
from hearth.chat.schemas import ChatCreate
from hearth.config import EmbedderEngineConfig, Settings
from hearth.server import create_app
from tests._accounts import PASSWORD, api_key, create_user, signed_in
from tests._server import Running, running


@pytest.fixture(scope="module")
def site(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("accounts"),
        engines=[EmbedderEngineConfig()],
    )
    with running(create_app(settings)) as server:
        yield server


def sign_up(
    server: Running, email: str, password: str = PASSWORD, invite: str | None = None
) -> httpx.Response:
    body = {"email": email, "password": password, "name": "", "invite": invite}
    return httpx.post(f"{server.url}/api/auth/signup", json=body)


def test_first_sign_up_is_admin_then_others_wait_for_approval(site: Running) -> None:
    first = sign_up(site, "Root@Example.org")
    assert first.status_code == 202, first.text
    assert first.json()["next"] == "sign_in"
    root = _user(site, "root@example.org")
    assert root.role == "admin" and root.status == "active"

    second = sign_up(site, "second@example.org")
    assert second.status_code == 202 and second.json()["next"] == "wait_for_approval"
    assert _user(site, "second@example.org").status == "pending"
    refused = httpx.post(
        f"{site.url}/api/auth/signin",
        json={"email": "second@example.org", "password": PASSWORD},
    )
    assert refused.status_code == 403 and "approval" in refused.json()["error"]["message"]

    admin = signed_in(site, root)
    second_id = _user(site, "second@example.org").id
    approved = admin.patch(f"/api/admin/users/{second_id}", json={"status": "active"})
    assert approved.status_code == 200, approved.text
    assert signed_in(site, _user(site, "second@example.org")).get("/api/auth/me").status_code == 200


def test_sign_up_does_not_tell_whether_an_email_has_an_account(site: Running) -> None:
    """A taken email (in any case) is answered exactly like a new one, and its account
    keeps its password; the answer's words depend on the site's settings only."""
    taken = create_user(site, email="Holder@example.org")

    def answer(email: str) -> tuple[int, dict[str, str], list[str]]:
        response = sign_up(site, email, password="another password 123")
        body = response.json()
        body["email"] = body["email"].lower()
        names = sorted(set(response.headers) - {"date", "x-request-id"})
        return response.status_code, body | {"email": "?"}, names

    assert answer("holder@EXAMPLE.org") == answer("newcomer@example.org")
    assert signed_in(site, taken).get("/api/auth/me").json()["email"] == "Holder@example.org"
    with_new_password = httpx.post(
        f"{site.url}/api/auth/signin",
        json={"email": "holder@example.org", "password": "another password 123"},
    )
    assert with_new_password.status_code == 401


def test_sign_up_is_rate_limited_per_email(site: Running) -> None:
    statuses = [sign_up(site, "probe@example.org").status_code for _ in range(12)]
    assert statuses[:10] == [202] * 10, statuses
    assert statuses[10:] == [429, 429], statuses


def test_people_are_those_one_shares_a_group_with(site: Running) -> None:
    """`/api/people` and the share form resolve only people in the caller's groups (all
    of them for an admin): an email outside them fails like one with no account."""
    ann, ben = create_user(site), create_user(site)
    ann_api = signed_in(site, ann)
    assert ann_api.get("/api/people").json() == []
    admin = signed_in(site, _user(site, "root@example.org"))
    assert any(p["id"] == ben.id for p in admin.get("/api/people?limit=1000").json())

    collection = ann_api.post("/api/collections", json={"name": "Notes"}).json()["id"]
    csrf = ann_api.headers["x-csrf-token"]

    def share(email: str) -> httpx.Response:
        form = {"csrf_token": csrf, "action": "share", "email": email}
        return ann_api.post(f"/collections/{collection}", data=form)

    unseen, unknown = share(ben.email), share("nobody-at-all@example.org")
    assert unseen.status_code == unknown.status_code == 404
    assert unseen.text.replace(ben.email, "?") == unknown.text.replace(
        "nobody-at-all@example.org", "?"
    )

    group = admin.post("/api/admin/groups", json={"name": f"team-{ann.id[:6]}"}).json()["id"]
    for member in (ann, ben):
        added = admin.put(f"/api/admin/groups/{group}/members/{member.id}")
        assert added.is_success, added.text
    ann_api = signed_in(site, ann)  # a new session carries the new group
    assert [p["email"] for p in ann_api.get("/api/people").json()] == [ben.email]
    csrf = ann_api.headers["x-csrf-token"]
    shared = ann_api.post(
        f"/collections/{collection}",
        data={"csrf_token": csrf, "action": "share", "email": ben.email.upper()},
    )
    assert shared.status_code == 303, shared.text
    grants = ann_api.get(f"/api/collections/{collection}/grants").json()
    assert grants == [{"principal": ben.id, "permission": "read"}]


def test_passwords_are_argon2id_hashes(site: Running) -> None:
    user = create_user(site)

    async def stored() -> str:
        async with site.app.state.users.database.session() as session:
            return await session.scalar(select(User.password_hash).where(User.id == user.id))

    hashed = site.call(stored())
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed


def test_session_cookie_is_httponly_samesite_and_revocable(site: Running) -> None:
    user = create_user(site)
    response = httpx.post(
        f"{site.url}/api/auth/signin", json={"email": user.email, "password": PASSWORD}
    )
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "max-age=" in cookie

    client = signed_in(site, user)
    other_browser = signed_in(site, user)
    assert client.get("/api/auth/me").json()["email"] == user.email
    assert client.post("/api/auth/signout").status_code == 204
    assert client.get("/api/auth/me").status_code == 401
    assert other_browser.get("/api/auth/me").status_code == 200  # only this browser

    assert other_browser.post("/api/auth/signout-everywhere").status_code == 204
    third = signed_in(site, user)
    assert other_browser.get("/api/auth/me").status_code == 401
    assert third.get("/api/auth/me").status_code == 200  # signed in after it


def test_forged_or_mangled_cookies_are_refused(site: Running) -> None:
    client = signed_in(site, create_user(site))
    real = client.cookies["hearth_session"]
    token, _, signature = real.partition(".")

    def mangled(text: str) -> str:  # its first character changed (to one it is not)
        return ("B" if text[0] == "A" else "A") + text[1:]

    for value in (
        f"{token}.{mangled(signature)}",
        f"{mangled(token)}.{signature}",
        token,
        "",
        "a.b",
    ):
        forged = httpx.get(f"{site.url}/api/auth/me", cookies={"hearth_session": value})
        assert forged.status_code == 401, value


def test_unsafe_requests_with_a_cookie_need_the_csrf_token(site: Running) -> None:
    client = signed_in(site, create_user(site))
    token = client.headers.pop("x-csrf-token")
    body = {"name": "k"}
    assert client.post("/api/keys", json=body).status_code == 403
    assert client.post("/api/keys", json=body, headers={"x-csrf-token": "wrong"}).status_code == 403
    # A token from another session is wrong too.
    other = signed_in(site, create_user(site)).headers["x-csrf-token"]
    assert client.post("/api/keys", json=body, headers={"x-csrf-token": other}).status_code == 403
    assert client.post("/api/keys", json=body, headers={"x-csrf-token": token}).status_code == 201
    # Reading needs no token; API keys need none (no cookie, no cross-site request).
    assert client.get("/api/keys").status_code == 200


def test_sign_in_is_rate_limited_per_email(site: Running) -> None:
    """10 a minute per email: a guesser is stopped after about ten tries (a few more if the
    tries are slow, as the allowance refills one every six seconds)."""
    user = create_user(site)
    statuses = []
    while 429 not in statuses:
        assert len(statuses) < 25, statuses
        statuses.append(
            httpx.post(
                f"{site.url}/api/auth/signin", json={"email": user.email, "password": "wrong pass"}
            ).status_code
        )
    assert set(statuses[:-1]) == {401} and len(statuses) >= 11
    limited = httpx.post(
        f"{site.url}/api/auth/signin", json={"email": user.email, "password": PASSWORD}
    )
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_wrong_password_and_unknown_email_fail_alike(site: Running) -> None:
    user = create_user(site)
    wrong = httpx.post(
        f"{site.url}/api/auth/signin", json={"email": user.email, "password": "not it at all"}
    )
    unknown = httpx.post(
        f"{site.url}/api/auth/signin", json={"email": "nobody@example.org", "password": "x" * 9}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


def test_disabling_a_user_ends_their_sessions_and_keys(site: Running) -> None:
    admin = signed_in(site, create_user(site, admin=True))
    user = create_user(site)
    client = signed_in(site, user)
    key = api_key(site, user)
    bearer = {"authorization": f"Bearer {key}"}
    assert httpx.get(f"{site.url}/api/keys", headers=bearer).status_code == 200
    assert admin.patch(f"/api/admin/users/{user.id}", json={"status": "disabled"}).is_success
    assert client.get("/api/auth/me").status_code == 401
    deadline = time.monotonic() + 3  # the key cache lives a second
    while httpx.get(f"{site.url}/api/keys", headers=bearer).status_code != 401:
        assert time.monotonic() < deadline, "the disabled user's key still works"
        time.sleep(0.1)


def test_deleting_a_user_revokes_their_keys_and_erases_what_they_own(site: Running) -> None:
    admin = signed_in(site, create_user(site, admin=True))
    user, friend = create_user(site), create_user(site)
    bearer = {"authorization": f"Bearer {api_key(site, user)}"}
    mine = httpx.Client(base_url=site.url, headers=bearer)
    # This site serves no chat model: the chat is made through the service.
    chats = site.app.state.chats
    chat = site.call(chats.create(Principal(user.id), ChatCreate(title="private"), model="m"))
    collection = mine.post("/api/collections", json={"name": "notes"}).raise_for_status().json()
    grant = {"principal": friend.id, "permission": "read"}
    assert mine.put(f"/api/collections/{collection['id']}/grants", json=grant).is_success
    # And a collection of the friend's shared with the user: that grant goes too.
    theirs = {"authorization": f"Bearer {api_key(site, friend)}"}
    shared = httpx.post(f"{site.url}/api/collections", headers=theirs, json={"name": "team"})
    shared_id = shared.raise_for_status().json()["id"]
    httpx.put(
        f"{site.url}/api/collections/{shared_id}/grants",
        headers=theirs,
        json={"principal": user.id, "permission": "read"},
    ).raise_for_status()

    assert admin.delete(f"/api/admin/users/{user.id}").status_code == 204
    time.sleep(1.1)  # past the key cache: the next call looks the key up again
    attempts = [
        mine.get("/api/chats"),
        mine.get("/v1/models"),
        mine.post("/api/keys", json={"name": "another"}),
        mine.get(f"/api/chats/{chat.id}"),
    ]
    assert [a.status_code for a in attempts] == [401] * len(attempts)
    # Its collection is gone for the friend it was shared with.
    friend_view = httpx.get(f"{site.url}/api/collections/{collection['id']}", headers=theirs)
    assert friend_view.status_code == 404

    def rows(sql: str, **params: str) -> int:
        async def count() -> int:
            async with site.app.state.database.read() as session:
                return int(await session.scalar(text(sql), params))

        return site.call(count())

    assert rows("SELECT count(*) FROM chat WHERE owner_id = :u", u=user.id) == 0
    assert rows("SELECT count(*) FROM collection WHERE owner_id = :u", u=user.id) == 0
    assert rows("SELECT count(*) FROM collection_grant WHERE principal = :u", u=user.id) == 0
    assert (
        rows("SELECT count(*) FROM api_key WHERE owner_id = :u AND revoked_at IS NULL", u=user.id)
        == 0
    )
    assert rows("SELECT count(*) FROM user_session WHERE user_id = :u", u=user.id) == 0
    # Deleting again is a clean 404, and the friend's own collection is untouched.
    assert admin.delete(f"/api/admin/users/{user.id}").status_code == 404
    assert httpx.get(f"{site.url}/api/collections/{shared_id}", headers=theirs).is_success
    mine.close()


def test_password_change_signs_out_other_sessions(site: Running) -> None:
    user = create_user(site)
    here, elsewhere = signed_in(site, user), signed_in(site, user)
    wrong = here.post(
        "/api/auth/password", json={"current_password": "nope", "new_password": "new password 1"}
    )
    assert wrong.status_code == 400
    changed = here.post(
        "/api/auth/password", json={"current_password": PASSWORD, "new_password": "new password 1"}
    )
    assert changed.status_code == 204
    assert here.get("/api/auth/me").status_code == 200  # a fresh cookie came with the answer
    assert elsewhere.get("/api/auth/me").status_code == 401
    assert signed_in(site, user, "new password 1").get("/api/auth/me").status_code == 200


def test_admin_routes_refuse_users(site: Running) -> None:
    client = signed_in(site, create_user(site))
    for method, path in [
        ("GET", "/api/admin/users"),
        ("POST", "/api/admin/groups"),
        ("GET", "/api/admin/keys"),
        ("PATCH", "/api/settings"),
    ]:
        response = client.request(method, path, json={"name": "x"})
        assert response.status_code == 403, (method, path, response.text)
    assert httpx.get(f"{site.url}/api/admin/users").status_code == 401


def test_users_cannot_make_keys_for_others(site: Running) -> None:
    victim = create_user(site, admin=True)
    client = signed_in(site, create_user(site))
    made = client.post("/api/keys", json={"name": "x", "owner_id": victim.id})
    assert made.status_code == 403
    made = client.post("/api/keys", json={"name": "x", "team_id": "some-team"})
    assert made.status_code == 403


def test_users_cannot_revoke_each_others_keys(site: Running) -> None:
    owner, thief = create_user(site), signed_in(site, create_user(site))
    key = api_key(site, owner)
    prefix = "-".join(key.split("-")[:2])
    assert thief.delete(f"/api/keys/{prefix}").status_code == 404
    assert (
        httpx.get(f"{site.url}/api/keys", headers={"authorization": f"Bearer {key}"}).status_code
        == 200
    )


def test_the_last_admin_cannot_demote_or_disable_themselves(site: Running) -> None:
    users = site.app.state.users
    root = _user(site, "root@example.org")
    for user in site.call(users.list(limit=500)):
        if user.role == "admin" and user.id != root.id:
            site.call(
                users.update(Principal(root.id, is_admin=True), user.id, UserUpdate(role="user"))
            )
    admin = signed_in(site, root)
    for change in ({"role": "user"}, {"status": "disabled"}):
        refused = admin.patch(f"/api/admin/users/{root.id}", json=change)
        assert refused.status_code == 400, refused.text
        assert "last active admin" in refused.json()["error"]["message"]


def test_sign_up_modes(site: Running) -> None:
    admin = signed_in(site, _user(site, "root@example.org"))

    def can_sign_in(email: str) -> bool:
        response = httpx.post(
            f"{site.url}/api/auth/signin", json={"email": email, "password": PASSWORD}
        )
        return response.status_code == 200

    assert admin.patch("/api/settings", json={"signup_mode": "closed"}).status_code == 200
    closed = sign_up(site, "late@example.org")
    assert closed.status_code == 202 and not can_sign_in("late@example.org")
    assert admin.patch("/api/settings", json={"signup_mode": "invite"}).status_code == 200
    stranger = sign_up(site, "stranger@example.org")
    assert stranger.status_code == 202 and not can_sign_in("stranger@example.org")
    invited = admin.post("/api/admin/users", json={"email": "invited@example.org"})
    assert invited.status_code == 201 and invited.json()["invited"]
    token = invited.json()["invitation_link"].removeprefix("/signup?invite=")
    claimed = sign_up(site, "invited@example.org", invite=token)
    assert claimed.status_code == 202
    assert claimed.json() | {"email": "?"} == stranger.json() | {"email": "?"}
    assert can_sign_in("invited@example.org")  # the link was the administrator's approval
    admin.patch("/api/settings", json={"signup_mode": "open"})


def test_an_invitation_is_claimed_by_its_link_not_by_its_email(site: Running) -> None:
    """Anyone who knows an invited email could claim the account by signing up with it
    first; now only the link's holder can, once, before it expires."""
    admin = signed_in(site, _user(site, "root@example.org"))
    made = admin.post("/api/admin/users", json={"email": "link-holder@example.org"}).json()
    assert "invitation_link" in made, made
    token = made["invitation_link"].removeprefix("/signup?invite=")
    assert made["status"] == "pending" and len(token) >= 40
    assert "invite_hash" not in made and token not in str(_user(site, "link-holder@example.org"))

    def signs_in(password: str) -> bool:
        body = {"email": "link-holder@example.org", "password": password}
        return httpx.post(f"{site.url}/api/auth/signin", json=body).status_code == 200

    # Without the link, with a wrong one, or with another account's: nothing changes.
    other = admin.post("/api/admin/users", json={"email": "invitee-two@example.org"}).json()
    other_token = other["invitation_link"].removeprefix("/signup?invite=")
    for guess in (None, "x" * 43, other_token):
        answer = sign_up(site, "link-holder@example.org", password="squatter-pass", invite=guess)
        assert answer.status_code == 202
        assert not signs_in("squatter-pass")
    assert _user(site, "link-holder@example.org").invited
    # A new link replaces the old one.
    again = admin.post(f"/api/admin/users/{made['id']}/invitation")
    assert again.status_code == 201
    fresh = again.json()["invitation_link"].removeprefix("/signup?invite=")
    assert fresh != token
    sign_up(site, "link-holder@example.org", password="stale-link-pass", invite=token)
    assert not signs_in("stale-link-pass")
    # The link works once, and the account is active at once.
    sign_up(site, "link-holder@example.org", password="chosen-pass", invite=fresh)
    assert signs_in("chosen-pass")
    account = _user(site, "link-holder@example.org")
    assert account.status == "active" and not account.invited
    sign_up(site, "link-holder@example.org", password="second-use-pass", invite=fresh)
    assert not signs_in("second-use-pass") and signs_in("chosen-pass")
    # A claimed account gets no new link; an unknown one is a 404.
    refused = admin.post(f"/api/admin/users/{made['id']}/invitation")
    assert refused.status_code == 400 and "reset its password" in refused.text
    assert admin.post("/api/admin/users/nobody/invitation").status_code == 404
    # An expired link claims nothing.
    late = admin.post("/api/admin/users", json={"email": "late-link@example.org"}).json()
    site.call(_expire(site, late["id"]))
    sign_up(
        site,
        "late-link@example.org",
        password="too-late-pass",
        invite=late["invitation_link"].removeprefix("/signup?invite="),
    )
    late_in = {"email": "late-link@example.org", "password": "too-late-pass"}
    assert httpx.post(f"{site.url}/api/auth/signin", json=late_in).status_code == 401


async def _expire(site: Running, user_id: str) -> None:
    async with site.app.state.database.session() as session:
        await session.execute(
            text("UPDATE app_user SET invite_expires_at = now() - interval '1s' WHERE id = :i"),
            {"i": user_id},
        )
        await session.commit()


def _user(site: Running, email: str):  # type: ignore[no-untyped-def]
    return site.call(site.app.state.users.find(email))
