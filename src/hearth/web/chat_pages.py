"""The chat pages: the conversation list beside one conversation, rendered on the server.
Sending, streaming and stopping go through `/api/chats` from `static/chat.js`.

An authenticated page costs three database round trips: the session (cached for a second),
the conversation list, and the conversation with its latest messages (one query)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from hearth.chat.markdown import highlight_css
from hearth.fields import RowId
from hearth.gateway.context import context_window
from hearth.gateway.vision import vision
from hearth.web._render import page, require_user

router = APIRouter(include_in_schema=False)
_HIGHLIGHT_CSS = highlight_css()


@router.get("/", response_class=HTMLResponse)
async def home(
    request: Request,
    q: str = "",
    cursor: str | None = None,
    archived: bool = False,
    tag: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """A new chat, beside the list of chats (`archived`: the archived ones; `tag`: those
    with that tag)."""
    return await _chat_page(
        request, None, q=q, cursor=cursor, before=None, archived=archived, tag=tag
    )


@router.get("/c/{chat_id}", response_class=HTMLResponse)
async def chat_page(
    request: Request,
    chat_id: uuid.UUID,
    q: str = "",
    cursor: str | None = None,
    before: int | None = None,
    tag: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """One chat: its latest messages (older ones a page at a time, `before`)."""
    return await _chat_page(request, chat_id, q=q, cursor=cursor, before=before, tag=tag)


@router.get("/c/{chat_id}/conversation", response_class=HTMLResponse)
async def conversation_fragment(
    request: Request, chat_id: uuid.UUID, before: RowId | None = None
) -> Response:
    """The chat's conversation alone, as the chat page renders it (its messages, arrows
    between versions): what the page shows again after switching branch, without a
    reload."""
    user = await require_user(request)
    _, messages = await request.app.state.chats.open(user.principal, chat_id, before=before)
    return page(request, "_conversation.html", {"messages": messages, "chat_id": chat_id})


@router.get("/s/{token}", response_class=HTMLResponse)
async def shared_page(request: Request, token: str, before: RowId | None = None) -> Response:
    """A chat someone shared: read-only, for anyone signed in (others sign in first and
    come back here); 404 for a wrong or revoked link."""
    await require_user(request)
    shared = await request.app.state.chat_shares.read(token, before=before)
    return page(request, "shared.html", {"shared": shared, "readonly": True, "token": token})


@router.get("/assets/highlight.css")
async def highlight_stylesheet() -> Response:
    return Response(
        _HIGHLIGHT_CSS,
        media_type="text/css",
        headers={"cache-control": "public, max-age=86400"},
    )


async def _chat_page(
    request: Request,
    chat_id: uuid.UUID | None,
    *,
    q: str,
    cursor: str | None,
    before: int | None,
    archived: bool = False,
    tag: str = "",
) -> Response:
    user = await require_user(request)
    state = request.app.state
    chats = await state.chats.list(
        user.principal, query=q, cursor=cursor, limit=50, archived=archived, tag=tag or None
    )
    chat = messages = None
    if chat_id is not None:
        chat, messages = await state.chats.open(user.principal, chat_id, before=before)
    served = [r.model.name for r in state.routes.all() if r.model.type == "chat"]
    if chat is None:  # only a new chat needs the default model (a cached setting)
        site = await state.site.get()
        preferred = site.default_model or state.settings.default_model
        default = state.routes.default_chat_model(preferred)
    return page(
        request,
        "chat.html",
        {
            "chats": chats,
            "chat": chat,
            "messages": messages,
            "models": served,
            # Each model's window, so the page can warn before sending what will not fit.
            "windows": {name: context_window(state.routes, name) for name in served},
            # Which read images: the composer attaches images only for those.
            "vision": {name: vision(state.routes, name).reads_images is True for name in served},
            "image_max_bytes": state.settings.chat_image_max_bytes,
            "model": chat.model if chat else default,  # type: ignore[possibly-undefined]
            "q": q,
            "archived": archived,
            "tag": tag,
        },
    )
