"""Chat routes (`/api/chats`): the web UI and scripts use the same ones."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import JSONResponse, Response, StreamingResponse

from hearth.accounts.auth import CallerDep
from hearth.accounts.principal import Principal
from hearth.chat.answers import ChatAnswers, ChatEvent, Defaults
from hearth.chat.citations import cited_numbers, link_citations
from hearth.chat.importers import ChatImports, hearth_export, import_format
from hearth.chat.markdown import render_markdown
from hearth.chat.openwebui import ImportModels
from hearth.chat.schemas import (
    ChatCreate,
    ChatCreated,
    ChatExport,
    ChatModelPublic,
    ChatPublic,
    ChatsImported,
    ChatsPage,
    ChatUpdate,
    MessageCreate,
    MessagesPage,
    TagCount,
)
from hearth.chat.service import Chats, export_markdown
from hearth.errors import InvalidRequest
from hearth.fields import RowId
from hearth.gateway.context import context_window
from hearth.gateway.vision import vision
from hearth.http.replies import Streamed
from hearth.presets.service import chat_from_preset

router = APIRouter(prefix="/api/chats", tags=["chats"])

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _chats(request: Request) -> Chats:
    return request.app.state.chats


def _imports(request: Request) -> ChatImports:
    return request.app.state.chat_imports


ChatsDep = Annotated[Chats, Depends(_chats)]
ImportsDep = Annotated[ChatImports, Depends(_imports)]


@router.get("")
async def list_chats(
    chats: ChatsDep,
    caller: CallerDep,
    q: str = "",
    archived: bool = False,
    tag: Annotated[str | None, Query(max_length=200)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ChatsPage:
    """The caller's chats, most recent first; `q` searches titles and messages (and its
    `tag:name` terms keep the chats with that tag); `tag` keeps those with that tag."""
    return await chats.list(
        caller, query=q, archived=archived, tag=tag or None, cursor=cursor, limit=limit
    )


@router.get("/tags")
async def list_tags(chats: ChatsDep, caller: CallerDep, archived: bool = False) -> list[TagCount]:
    """The caller's tags, alphabetically, each with how many of their chats carry it
    (`archived`: of their archived chats)."""
    return await chats.tags(caller, archived=archived)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_chat(
    body: ChatCreate, request: Request, chats: ChatsDep, caller: CallerDep
) -> ChatCreated:
    """Start a chat with a model (default: the site's default model), or from a preset
    (`preset_id`: its model, settings and collections, each overridden by a field sent
    beside it)."""
    notes: list[str] = []
    if body.preset_id is not None:
        start = await request.app.state.presets.start(caller, body.preset_id)
        body, notes = chat_from_preset(body, start)
    model = await chat_model(request, body.model)
    await _check_collections(request, caller, body.collection_ids)
    chat = await chats.create(caller, body, model=model)
    return ChatCreated(**chat.model_dump(), notes=notes)


# The body is read by the route, which tells the two exports apart by their shape; the
# schema documents both.
_IMPORT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/ChatExport"},
                    {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "Open WebUI's export of chats (Settings > Chats > "
                        "Export chats)",
                    },
                ]
            }
        }
    },
}


@router.post(
    "/import",
    status_code=status.HTTP_201_CREATED,
    response_model=None,
    openapi_extra={"requestBody": _IMPORT_BODY},
    responses={
        201: {"model": ChatPublic, "description": "Hearth's export: the new chat."},
        200: {"model": ChatsImported, "description": "Open WebUI's export: each chat's result."},
        413: {"description": "Larger than the setting `chat_import_max_bytes`."},
    },
)
async def import_chats(request: Request, imports: ImportsDep, caller: CallerDep) -> Response:
    """Chats from an export, told apart by its shape. Hearth's own (`GET
    /api/chats/{id}/export?format=json`): one chat, 201 with it. Open WebUI's "Export chats"
    file: many, each in its own transaction; 200 with each chat's result: its new id, or
    why it was not imported, the messages of other branches left out, and what Hearth did
    not keep (folders, files...)."""
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidRequest("We could not parse the JSON body of your request.") from None
    if import_format(data) == "hearth":
        chat = await imports.hearth(caller, hearth_export(data))
        return JSONResponse(chat.model_dump(mode="json"), status_code=status.HTTP_201_CREATED)
    report = await imports.open_webui(caller, data, models=await _import_models(request))
    return JSONResponse(report.model_dump(mode="json"))


async def _import_models(request: Request) -> ImportModels:
    """The chat models an imported chat may keep, and the one it takes instead."""
    routes = request.app.state.routes
    site = await request.app.state.site.get()
    preferred = site.default_model or request.app.state.settings.default_model
    return ImportModels(
        served=frozenset(r.model.name for r in routes.all() if r.model.type == "chat"),
        default=routes.default_chat_model(preferred),
    )


@router.get("/models")
async def list_chat_models(request: Request, caller: CallerDep) -> list[ChatModelPublic]:
    """The chat models served here, as the chat page offers them: each one's window,
    whether it reads images, and which a new chat takes."""
    routes = request.app.state.routes
    try:
        default = await chat_model(request, None)
    except InvalidRequest:
        default = None  # no chat model is served
    return [
        ChatModelPublic(
            name=r.model.name,
            context_window=context_window(routes, r.model.name),
            vision=vision(routes, r.model.name).reads_images is True,
            default=r.model.name == default,
        )
        for r in routes.all()
        if r.model.type == "chat"
    ]


@router.get("/{chat_id}")
async def get_chat(chat_id: uuid.UUID, chats: ChatsDep, caller: CallerDep) -> ChatPublic:
    return await chats.get(caller, chat_id)


@router.patch("/{chat_id}")
async def update_chat(
    chat_id: uuid.UUID, body: ChatUpdate, request: Request, chats: ChatsDep, caller: CallerDep
) -> ChatPublic:
    """Rename, archive or unarchive, pin, tag (`tags`: the whole set), change the model or
    the attached collections."""
    if body.model is not None:
        await chat_model(request, body.model)
    if body.collection_ids:
        await _check_collections(request, caller, body.collection_ids)
    return await chats.update(caller, chat_id, body)


@router.delete("/{chat_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_chat(chat_id: uuid.UUID, chats: ChatsDep, caller: CallerDep) -> Response:
    await chats.delete(caller, chat_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{chat_id}/messages")
async def list_messages(
    chat_id: uuid.UUID,
    chats: ChatsDep,
    caller: CallerDep,
    before: RowId | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> MessagesPage:
    """The latest messages of the branch the chat shows (the path from its first message
    to its active leaf), oldest first, each with its `parent_id` and its place among its
    siblings (`sibling_index` of `siblings`, `previous_sibling`, `next_sibling`: the other
    versions of a regenerated answer or an edited question); `before` pages back."""
    return await chats.messages(caller, chat_id, before=before, limit=limit)


@router.post("/{chat_id}/messages/{message_id}/select")
async def select_branch(
    chat_id: uuid.UUID, message_id: RowId, chats: ChatsDep, caller: CallerDep
) -> MessagesPage:
    """Show the branch through message `message_id` (a sibling's id, say): the chat's
    active leaf becomes the newest message at or below it, so a branch opens where it was
    left, and what is sent next continues it. Returns the latest messages of that path."""
    return await chats.select_branch(caller, chat_id, message_id)


@router.post("/{chat_id}/messages")
async def send_message(
    chat_id: uuid.UUID, body: MessageCreate, request: Request, caller: CallerDep
) -> StreamingResponse:
    """Send a message, after the chat's active leaf (it continues the branch shown); the
    answer streams back as server-sent events: `question` (the stored message and any
    citations), `delta` (text), then `done` or `error` (the stored answer). Closing the
    connection stops the answer; what was written so far is kept. `images`: ids of images
    uploaded to the chat for it (a model that does not read images: 400)."""
    site = await request.app.state.site.get()
    events = await _answers(request).ask(
        caller, chat_id, body.content, images=body.images, defaults=_defaults(site)
    )
    return _stream(events)


@router.post("/{chat_id}/messages/{message_id}/regenerate")
async def regenerate(
    chat_id: uuid.UUID, message_id: RowId, request: Request, caller: CallerDep
) -> StreamingResponse:
    """Answer user message `message_id` again (or, given an answer's id, the question it
    answers): a new answer beside the earlier ones, which stay (its siblings)."""
    site = await request.app.state.site.get()
    events = await _answers(request).regenerate(
        caller, chat_id, message_id, defaults=_defaults(site)
    )
    return _stream(events)


@router.put("/{chat_id}/messages/{message_id}")
async def edit_message(
    chat_id: uuid.UUID, message_id: RowId, body: MessageCreate, request: Request, caller: CallerDep
) -> StreamingResponse:
    """Edit user message `message_id`: a new version of it (a sibling: it follows the same
    message) is answered and shown, with the old one's images (`images` is for new
    messages: 400 here); the old one and what followed it stay, one branch away."""
    if body.images:
        raise InvalidRequest(
            "An edited message keeps its images; images are sent with a new message.",
            param="images",
        )
    site = await request.app.state.site.get()
    events = await _answers(request).regenerate(
        caller,
        chat_id,
        message_id,
        content=body.content,
        defaults=_defaults(site),
    )
    return _stream(events)


@router.get(
    "/{chat_id}/export",
    response_model=None,
    responses={200: {"model": ChatExport, "description": "The chat (JSON), or Markdown."}},
)
async def export_chat(
    chat_id: uuid.UUID,
    chats: ChatsDep,
    caller: CallerDep,
    format: Literal["json", "md"] = "json",
) -> Response:
    """The whole chat as JSON (importable; every branch, each message naming its `parent`
    by its place, and the `current` one shown) or Markdown (the branch shown), as a
    download."""
    data = await chats.export(caller, chat_id)
    if format == "md":
        body, media = export_markdown(data), "text/markdown; charset=utf-8"
    else:
        body, media = data.model_dump_json(indent=2), "application/json"
    headers = {"content-disposition": _attachment(data.title, format)}
    return Response(body, media_type=media, headers=headers)


def _attachment(title: str, extension: str) -> str:
    """A download named after the chat: an ASCII name for old clients, and the title itself
    (any script) in RFC 6266's `filename*`, since headers carry Latin-1 only."""
    name = "".join(c if c.isalnum() or c in "-_ " else "_" for c in title)[:60].strip() or "chat"
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return (
        f'attachment; filename="{ascii_name}.{extension}"; '
        f"filename*=UTF-8''{quote(f'{name}.{extension}', safe='')}"
    )


async def chat_model(request: Request, wanted: str | None) -> str:
    """The model a chat uses: the one asked for if it is a served chat model, else the
    site's default, else the configured default, else the first chat model."""
    routes = request.app.state.routes
    served = [r.model.name for r in routes.all() if r.model.type == "chat"]
    if wanted is not None:
        if wanted not in served:
            raise InvalidRequest(f"'{wanted}' is not a chat model served here.", param="model")
        return wanted
    site = await request.app.state.site.get()
    preferred = site.default_model or request.app.state.settings.default_model
    model = routes.default_chat_model(preferred)
    if model is None:
        raise InvalidRequest("No chat model is served here.", param="model")
    return model


async def _check_collections(
    request: Request, caller: Principal, collection_ids: list[uuid.UUID]
) -> None:
    documents = request.app.state.documents
    for collection_id in collection_ids:
        await documents.get_collection(caller, collection_id)  # NotFound unless readable


def _answers(request: Request) -> ChatAnswers:
    return request.app.state.chat_answers


def _stream(events: AsyncIterator[ChatEvent]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        try:
            async for event in events:
                stored = event.data.get("answer") if event.type == "error" else None
                stored = event.data.get("message") if event.type == "done" else stored
                if stored is not None:  # the answer as the page shows it
                    count = len(stored.get("citations") or [])
                    html = render_markdown(stored["content"])
                    event.data["html"] = link_citations(html, stored["id"], count)
                    event.data["cited"] = cited_numbers(stored["content"], count)
                data = json.dumps(event.data, ensure_ascii=False)
                yield f"event: {event.type}\ndata: {data}\n\n".encode()
        finally:
            await events.aclose()  # type: ignore[attr-defined]

    return Streamed(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def _defaults(site: Any) -> Defaults:
    """The site's settings (admin settings), as a chat without its own answers with them."""
    return Defaults(
        system_prompt=site.system_prompt, k=site.rag_top_k, max_tokens=site.answer_max_tokens
    )
