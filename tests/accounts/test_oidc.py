"""Single sign-on against a fake OpenID Connect provider (real HTTP, real RS256 tokens):
the browser's redirects are followed by hand, cookies and all."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hearth.accounts.principal import Principal
from hearth.accounts.users import UserCreate, UserUpdate
from hearth.config import EmbedderEngineConfig, Settings
from hearth.server import create_app
from tests._server import Running, running
from tests.fakes.oidc_provider import CLIENT_ID, CLIENT_SECRET, FakeOidcProvider

ADMIN = Principal("admin", is_admin=True)


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider() as fake:
        yield fake


@pytest.fixture(scope="module")
def site(provider, postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    settings = Settings(
        database_url=postgres.new_database(),
        data_dir=tmp_path_factory.mktemp("oidc"),
        engines=[EmbedderEngineConfig()],
        oidc_issuer=provider.issuer,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_provider_name="Example SSO",
    )
    with running(create_app(settings)) as server:
        yield server


def sign_on(site: Running, provider: FakeOidcProvider, user: dict, **spoil: str) -> httpx.Client:
    """Click "Sign in with ...": Hearth → provider → Hearth's callback → the app."""
    provider.user = user
    provider.spoil = spoil.get("spoil")
    browser = httpx.Client(base_url=site.url, timeout=30)
    to_provider = browser.get("/auth/oidc/login", params={"next": "/account"})
    assert to_provider.status_code == 303
    back = httpx.get(to_provider.headers["location"])
    assert back.status_code == 302
    browser.last = browser.get(back.headers["location"])  # type: ignore[attr-defined]
    return browser


def user(sub: str, email: str, verified: bool = True) -> dict:
    return {"sub": sub, "email": email, "email_verified": verified, "name": sub.title()}


def test_first_sign_on_creates_the_admin_and_lands_where_asked(
    site: Running, provider: FakeOidcProvider
) -> None:
    browser = sign_on(site, provider, user("alice", "alice@example.org"))
    assert browser.last.status_code == 303 and browser.last.headers["location"] == "/account"
    me = browser.get("/api/auth/me").json()
    assert me["email"] == "alice@example.org" and me["role"] == "admin"
    assert "Sign in with Example SSO" in httpx.get(f"{site.url}/login").text
    browser.close()


def test_later_sign_ons_wait_for_approval_and_reuse_the_account(
    site: Running, provider: FakeOidcProvider
) -> None:
    first = sign_on(site, provider, user("bob", "bob@example.org"))
    assert first.last.status_code == 403 and "approval" in first.last.text
    bob = site.call(site.app.state.users.find("bob@example.org"))
    assert bob.status == "pending"
    site.call(site.app.state.users.update(ADMIN, bob.id, UserUpdate(status="active")))
    again = sign_on(site, provider, user("bob", "bob@example.org"))
    assert again.last.status_code == 303
    assert again.get("/api/auth/me").json()["id"] == bob.id
    first.close()
    again.close()


def test_signing_on_with_an_invited_email_claims_the_invitation(
    site: Running, provider: FakeOidcProvider
) -> None:
    invited = site.call(
        site.app.state.users.create(UserCreate(email="dora@example.org"), status="pending")
    )
    assert invited.invitation_link
    browser = sign_on(site, provider, user("dora-at-idp", "dora@example.org"))
    assert browser.last.status_code == 303  # the invitation was the approval
    assert browser.get("/api/auth/me").json()["id"] == invited.id
    dora = site.call(site.app.state.users.find("dora@example.org"))
    assert dora.status == "active" and not dora.invited
    browser.close()


def test_a_verified_email_links_an_existing_password_account(
    site: Running, provider: FakeOidcProvider
) -> None:
    made = site.call(
        site.app.state.users.create(UserCreate(email="Carol@example.org", password="x" * 12))
    )
    browser = sign_on(site, provider, user("carol-at-idp", "carol@example.org"))
    assert browser.get("/api/auth/me").json()["id"] == made.id
    # An unverified email links nothing and creates nothing.
    stranger = sign_on(site, provider, user("mallory", "carol@example.org", verified=False))
    assert stranger.last.status_code == 403
    assert stranger.get("/api/auth/me").status_code == 401
    browser.close()
    stranger.close()


@pytest.mark.parametrize("spoil", ["nonce", "audience", "expired", "signature"])
def test_bad_id_tokens_sign_nobody_in(
    site: Running, provider: FakeOidcProvider, spoil: str
) -> None:
    browser = sign_on(site, provider, user("alice", "alice@example.org"), spoil=spoil)
    assert browser.last.status_code == 400, browser.last.text
    assert "hearth_session" not in browser.cookies
    browser.close()


def test_a_callback_without_its_state_is_refused(site: Running, provider: FakeOidcProvider) -> None:
    provider.user = user("alice", "alice@example.org")
    starter = httpx.Client(base_url=site.url)
    to_provider = starter.get("/auth/oidc/login")
    back = httpx.get(to_provider.headers["location"])
    # Another browser (no state cookie) presents the code: a login CSRF attempt.
    victim = httpx.Client(base_url=site.url)
    landed = victim.get(back.headers["location"])
    assert landed.status_code == 400 and "hearth_session" not in victim.cookies
    starter.close()
    victim.close()
