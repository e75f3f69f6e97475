"""Routes for API keys (`/api/keys`), and the dependency that authenticates /v1 requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import Response

from hearth.accounts.keys import ApiKeys, Caller, KeyCreate, KeyCreated, KeyPublic, Unauthenticated
from hearth.accounts.principal import CallerDep

router = APIRouter(prefix="/api/keys", tags=["keys"])


def _keys(request: Request) -> ApiKeys:
    return request.app.state.keys


KeysDep = Annotated[ApiKeys, Depends(_keys)]


async def key_caller(request: Request) -> Caller | None:
    """The API key a /v1 request presents (`Authorization: Bearer hk-...`).

    Keys are required on any non-loopback address (and wherever HEARTH_REQUIRE_API_KEY is
    set). Elsewhere a request may come without one, since OpenAI clients insist on sending
    some key: a token that is not a Hearth key is then ignored, a Hearth key is checked."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    required = request.app.state.settings.api_keys_required
    if token.startswith("hk-") or (token and required):
        return await request.app.state.keys.authenticate(token)
    if required:
        raise Unauthenticated(
            "You didn't provide an API key. Send it as 'Authorization: Bearer hk-...'."
        )
    return None


KeyCallerDep = Annotated[Caller | None, Depends(key_caller)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: KeyCreate, keys: KeysDep, caller: CallerDep) -> KeyCreated:
    """Create an API key. The response holds the full key: it is not shown again."""
    return await keys.create(caller, body)


@router.get("")
async def list_keys(keys: KeysDep, caller: CallerDep) -> list[KeyPublic]:
    """The caller's keys (prefixes only)."""
    return await keys.list(caller)


@router.delete("/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(key: str, keys: KeysDep, caller: CallerDep) -> Response:
    """Revoke a key by id or prefix; every replica refuses it within a second."""
    await keys.revoke(caller, key)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
