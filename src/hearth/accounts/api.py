"""Routes for signing in and out (`/api/auth`), the caller's own API keys (`/api/keys`), and
the dependency that authenticates /v1 requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.datastructures import State

from hearth.accounts.auth import (
    CallerDep,
    bearer_token,
    set_session_cookie,
    signed_in_user,
    start_session,
)
from hearth.accounts.auth import sign_up as start_sign_up
from hearth.accounts.keys import ApiKeys, Caller, KeyCreate, KeyCreated, KeyPublic, Unauthenticated
from hearth.accounts.sessions import COOKIE
from hearth.accounts.users import Person, SignUp, SignUpReceived, UserPublic, Users

router = APIRouter(tags=["accounts"])


def _keys(request: Request) -> ApiKeys:
    return request.app.state.keys


def _users(request: Request) -> Users:
    return request.app.state.users


KeysDep = Annotated[ApiKeys, Depends(_keys)]
UsersDep = Annotated[Users, Depends(_users)]


async def key_caller(request: Request) -> Caller | None:
    """The API key a /v1 request presents (`Authorization: Bearer hk-...`).

    Keys are required on any non-loopback address (and wherever HEARTH_REQUIRE_API_KEY is
    set). Elsewhere a request may come without one, since OpenAI clients insist on sending
    some key: a token that is not a Hearth key is then ignored, a Hearth key is checked."""
    return await key_caller_for(request.app.state, bearer_token(request))


async def key_caller_for(state: State, token: str) -> Caller | None:
    """`key_caller`, for the bearer token already read from the request."""
    required = state.settings.api_keys_required
    if token.startswith("hk-") or (token and required):
        return await state.keys.authenticate(token)
    if required:
        raise Unauthenticated(
            "You didn't provide an API key. Send it as 'Authorization: Bearer hk-...'."
        )
    return None


KeyCallerDep = Annotated[Caller | None, Depends(key_caller)]


class SignIn(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class PasswordChange(BaseModel):
    current_password: str
    new_password: str


class Me(UserPublic):
    groups: list[str]
    csrf_token: str | None = Field(
        description="Send as X-CSRF-Token on unsafe requests made with the session cookie."
    )


@router.post("/api/auth/signup", status_code=status.HTTP_202_ACCEPTED)
async def sign_up(body: SignUp, request: Request) -> SignUpReceived:
    """Ask for an account. The first account becomes the admin; later ones follow the
    sign-up mode (open, invitation, closed) and wait for approval if the admin asks so.

    The answer is the same whether or not the email already has an account, and says what
    to do next: sign in, or wait for approval. Rate-limited per address and per email."""
    return (await start_sign_up(request, body)).received


@router.get("/api/people")
async def people(
    users: UsersDep,
    caller: CallerDep,
    q: Annotated[str, Query(max_length=320, description="Part of an email or name.")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[Person]:
    """The people the caller may share with: those in a group with them (everyone, for an
    administrator)."""
    return await users.people(caller, query=q, limit=limit)


@router.post("/api/auth/signin")
async def sign_in(body: SignIn, request: Request, response: Response) -> UserPublic:
    """Sign in with email and password; sets the session cookie."""
    user, cookie = await start_session(request, body.email, body.password)
    set_session_cookie(request, response, cookie)
    return user


@router.post("/api/auth/signout", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out(request: Request, caller: CallerDep) -> Response:
    """End this browser's session."""
    await request.app.state.sessions.revoke(request.cookies.get(COOKIE))
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    set_session_cookie(request, response, None)
    return response


@router.post("/api/auth/signout-everywhere", status_code=status.HTTP_204_NO_CONTENT)
async def sign_out_everywhere(request: Request, caller: CallerDep) -> Response:
    """End every session of the caller, on every replica within a second."""
    await request.app.state.sessions.revoke_all(caller.user_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    set_session_cookie(request, response, None)
    return response


@router.get("/api/auth/me")
async def me(request: Request, users: UsersDep, caller: CallerDep) -> Me:
    """The caller's account."""
    user = await users.get(caller.user_id)
    signed_in = await signed_in_user(request)
    csrf = request.app.state.sessions.csrf_token(request.cookies.get(COOKIE)) if signed_in else None
    return Me(**user.model_dump(), groups=list(caller.groups), csrf_token=csrf)


@router.post("/api/auth/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: PasswordChange, request: Request, users: UsersDep, caller: CallerDep
) -> Response:
    """Change the caller's password; signs out every other session."""
    await users.change_password(caller.user_id, body.current_password, body.new_password)
    sessions = request.app.state.sessions
    await sessions.revoke_all(caller.user_id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if await signed_in_user(request):
        user_agent = request.headers.get("user-agent")
        set_session_cookie(
            request, response, await sessions.create(caller.user_id, user_agent=user_agent)
        )
    return response


@router.post("/api/keys", status_code=status.HTTP_201_CREATED, tags=["keys"])
async def create_key(body: KeyCreate, keys: KeysDep, caller: CallerDep) -> KeyCreated:
    """Create an API key. The response holds the full key: it is not shown again."""
    return await keys.create(caller, body)


@router.get("/api/keys", tags=["keys"])
async def list_keys(keys: KeysDep, caller: CallerDep) -> list[KeyPublic]:
    """The caller's keys (prefixes only)."""
    return await keys.list(caller)


@router.delete("/api/keys/{key}", status_code=status.HTTP_204_NO_CONTENT, tags=["keys"])
async def revoke_key(key: str, keys: KeysDep, caller: CallerDep) -> Response:
    """Revoke one of the caller's keys by id or prefix; every replica refuses it within a
    second."""
    await keys.revoke(caller, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
