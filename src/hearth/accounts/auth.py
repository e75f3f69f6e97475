"""Who is calling: the dependencies every authenticated route uses.

`/api/...` accepts a session cookie (the web UI; unsafe methods must carry the CSRF token
in `X-CSRF-Token`) or an API key (`Authorization: Bearer hk-...`, scripts). Both resolve to
a `Principal` that services filter by, inside their SQL.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response

from hearth.accounts.keys import Unauthenticated
from hearth.accounts.principal import Principal
from hearth.accounts.sessions import COOKIE, SignedIn
from hearth.accounts.users import SignedUp, SignUp, UserPublic
from hearth.errors import Forbidden
from hearth.gateway.limits import Limits

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Guessing passwords: a few tries a minute per email, more per address (offices share one).
SIGN_IN_PER_EMAIL = Limits(requests_per_minute=10)
SIGN_IN_PER_ADDRESS = Limits(requests_per_minute=300)
# Sign-ups cost an Argon2 hash each and could probe for accounts: the same few a minute per
# email, and fewer per address than sign-ins (a whole office signs up once, not hourly).
SIGN_UP_PER_EMAIL = Limits(requests_per_minute=10)
SIGN_UP_PER_ADDRESS = Limits(requests_per_minute=60)
_UNRESOLVED = object()


def bearer_token(request: Request) -> str:
    return bearer_of(request.headers.get("authorization", ""))


def bearer_of(authorization: str) -> str:
    """The token of an `Authorization: Bearer <token>` header's value, or ""."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def signed_in_user(request: Request) -> SignedIn | None:
    """The session's user, or None; resolved once per request."""
    signed_in = getattr(request.state, "signed_in", _UNRESOLVED)
    if signed_in is _UNRESOLVED:
        signed_in = await request.app.state.sessions.resolve(request.cookies.get(COOKIE))
        request.state.signed_in = signed_in
    return signed_in


async def current_principal(request: Request) -> Principal:
    """The caller of an /api route: an API key's owner, or the signed-in user."""
    token = bearer_token(request)
    if token:
        caller = await request.app.state.keys.authenticate(token)
        return caller.principal
    signed_in = await signed_in_user(request)
    if signed_in is None:
        raise Unauthenticated("Sign in, or send an API key as 'Authorization: Bearer hk-...'.")
    if request.method not in SAFE_METHODS:
        sessions = request.app.state.sessions
        presented = request.headers.get("x-csrf-token")
        if not sessions.check_csrf(request.cookies.get(COOKIE), presented):
            raise Forbidden("Missing or wrong CSRF token: send the page's X-CSRF-Token header.")
    return signed_in.principal


async def current_admin(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("Only administrators may do this.")
    return principal


CallerDep = Annotated[Principal, Depends(current_principal)]
AdminDep = Annotated[Principal, Depends(current_admin)]


async def start_session(request: Request, email: str, password: str) -> tuple[UserPublic, str]:
    """Sign in with a password: rate-limited per address and per email (on every replica
    when Redis is configured), then a new session; returns the user and the cookie value."""
    state = request.app.state
    await _admit(request, "signin", email, SIGN_IN_PER_ADDRESS, SIGN_IN_PER_EMAIL)
    user = await state.users.sign_in(email, password)
    cookie = await state.sessions.create(user.id, user_agent=request.headers.get("user-agent"))
    return user, cookie


async def sign_up(request: Request, body: SignUp) -> SignedUp:
    """Sign up, rate-limited like sign-in (per address and per email) before the hash."""
    await _admit(request, "signup", body.email, SIGN_UP_PER_ADDRESS, SIGN_UP_PER_EMAIL)
    state = request.app.state
    return await state.users.sign_up(body, await state.site.get())


async def _admit(
    request: Request, kind: str, email: str, per_address: Limits, per_email: Limits
) -> None:
    address = request.client.host if request.client else "unknown"
    await request.app.state.gateway.limiter.admit(
        [
            (f"{kind}-ip:{address}", per_address),
            (f"{kind}-email:{email.strip().lower()}", per_email),
        ],
        estimated_tokens=0,
    )


def set_session_cookie(request: Request, response: Response, cookie: str | None) -> None:
    """Set (or, with None, clear) the session cookie: HttpOnly, SameSite=Lax, Secure when
    the page came over HTTPS."""
    if cookie is None:
        response.delete_cookie(COOKIE, path="/")
        return
    lifetime = request.app.state.sessions.lifetime
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(lifetime.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
