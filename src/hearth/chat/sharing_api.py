"""Routes of shared chats: the owner makes, shows and revokes a chat's read-only link
(`/api/chats/{id}/share`); anyone signed in reads what a link shows (`/api/shared/{token}`,
and the page `/s/{token}`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import Response

from hearth.accounts.auth import CallerDep
from hearth.chat.schemas import ChatSharePublic, SharedChat
from hearth.chat.sharing import ChatShares, ShareLink
from hearth.fields import RowId

router = APIRouter(tags=["chats"])


def _shares(request: Request) -> ChatShares:
    return request.app.state.chat_shares


SharesDep = Annotated[ChatShares, Depends(_shares)]


@router.post(
    "/api/chats/{chat_id}/share",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"model": ChatSharePublic, "description": "The link it already had."}},
)
async def share_chat(
    chat_id: uuid.UUID, request: Request, response: Response, shares: SharesDep, caller: CallerDep
) -> ChatSharePublic:
    """A read-only link to the chat (owner only) for anyone signed in to this site, showing
    its messages up to now; 201 when made, 200 with the link it already had."""
    link, made = await shares.share(caller, chat_id)
    if not made:
        response.status_code = status.HTTP_200_OK
    return _public(request, link)


@router.get("/api/chats/{chat_id}/share")
async def get_chat_share(
    chat_id: uuid.UUID, request: Request, shares: SharesDep, caller: CallerDep
) -> ChatSharePublic:
    """The chat's live link (owner only); 404 when it has none."""
    return _public(request, await shares.link(caller, chat_id))


@router.delete("/api/chats/{chat_id}/share", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_chat_share(chat_id: uuid.UUID, shares: SharesDep, caller: CallerDep) -> Response:
    """Revoke the chat's link (owner only): it opens nothing from now on (404)."""
    await shares.revoke(caller, chat_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/shared/{token}")
async def read_shared_chat(
    token: str,
    shares: SharesDep,
    caller: CallerDep,
    before: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SharedChat:
    """What a link shows, to anyone signed in: the title and the messages (with their
    citations) up to the moment it was shared, the latest `limit` first (`before` pages
    back); 404 for a wrong or revoked link."""
    return await shares.read(token, before=before, limit=limit)


def _public(request: Request, link: ShareLink) -> ChatSharePublic:
    return ChatSharePublic(
        token=link.token,
        path=link.path,
        url=str(request.base_url).rstrip("/") + link.path,
        messages=link.messages,
        created_at=link.created_at,
    )
