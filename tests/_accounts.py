"""Accounts for tests: users made through the real service, their API keys, and signed-in
HTTP clients (session cookie + CSRF header), against a running Hearth."""

from __future__ import annotations

import uuid

import httpx

from hearth.accounts.keys import KeyCreate
from hearth.accounts.principal import Principal
from hearth.accounts.users import UserCreate, UserPublic
from tests._server import Running

PASSWORD = "correct horse battery"
_clients: list[httpx.Client] = []


def create_user(
    server: Running, *, admin: bool = False, email: str | None = None, status: str = "active"
) -> UserPublic:
    body = UserCreate(
        email=email or f"u{uuid.uuid4().hex[:10]}@example.org",
        password=PASSWORD,
        role="admin" if admin else "user",
    )
    return server.call(server.app.state.users.create(body, status=status))  # type: ignore[arg-type]


def api_key(server: Running, user: UserPublic, **options: object) -> str:
    """A new API key of `user` (with the given limits/models), as `Authorization` sends it."""
    principal = Principal(user.id, is_admin=user.role == "admin")
    body = KeyCreate(name=f"k-{uuid.uuid4().hex[:6]}", **options)  # type: ignore[arg-type]
    return server.call(server.app.state.keys.create(principal, body)).key


def admin_headers(server: Running) -> dict[str, str]:
    """`Authorization` headers of an administrator's key (one per server)."""
    cached = getattr(server, "_admin_headers", None)
    if cached is None:
        cached = {"authorization": f"Bearer {api_key(server, create_user(server, admin=True))}"}
        server._admin_headers = cached  # type: ignore[attr-defined]
    return cached


def user_headers(server: Running, user: UserPublic | None = None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key(server, user or create_user(server))}"}


def signed_in(server: Running, user: UserPublic, password: str = PASSWORD) -> httpx.Client:
    """An HTTP client signed in as `user` like a browser: the session cookie, and the CSRF
    token the page would send on unsafe requests."""
    client = httpx.Client(base_url=server.url, timeout=60)
    _clients.append(client)
    response = client.post("/api/auth/signin", json={"email": user.email, "password": password})
    assert response.status_code == 200, response.text
    client.headers["x-csrf-token"] = client.get("/api/auth/me").json()["csrf_token"]
    return client


def close_clients() -> None:
    """Close the clients `signed_in` opened (an autouse fixture calls it after each test)."""
    while _clients:
        _clients.pop().close()
