"""REST routes for collections, documents and search (`/api/collections/...`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, UploadFile, status
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import TypeAdapter

from hearth.accounts.auth import CallerDep
from hearth.engines.protocol import ChatCompletionChunk
from hearth.errors import Forbidden, InvalidRequest
from hearth.gateway.sse import SSE_HEADERS, sse_events
from hearth.http.replies import Streamed
from hearth.rag.schemas import (
    Answer,
    AskRequest,
    Citation,
    CollectionCreate,
    CollectionPublic,
    CollectionSummary,
    DocumentPublic,
    GrantCreate,
    GrantPublic,
    SearchRequest,
    SearchResults,
)
from hearth.rag.service import Documents
from hearth.rag.viewing import document_file

router = APIRouter(prefix="/api", tags=["documents"])


def _documents(request: Request) -> Documents:
    return request.app.state.documents


DocumentsDep = Annotated[Documents, Depends(_documents)]


@router.post("/collections", status_code=status.HTTP_201_CREATED)
async def create_collection(
    body: CollectionCreate, documents: DocumentsDep, caller: CallerDep
) -> CollectionPublic:
    """Create a collection (a knowledge base) owned by the caller."""
    return await documents.create_collection(caller, body)


@router.get("/collections")
async def list_collections(documents: DocumentsDep, caller: CallerDep) -> list[CollectionPublic]:
    """Collections the caller owns or may read."""
    return await documents.list_collections(caller)


@router.get("/admin/collections")
async def all_collections(documents: DocumentsDep, caller: CallerDep) -> list[CollectionSummary]:
    """Every collection on the site, with its size (administrators)."""
    return await documents.all_collections(caller)


@router.get("/collections/{collection_id}")
async def get_collection(
    collection_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> CollectionPublic:
    return await documents.get_collection(caller, collection_id)


@router.delete("/collections/{collection_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_collection(
    collection_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> Response:
    """Delete a collection with all its documents and chunks."""
    await documents.delete_collection(caller, collection_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/collections/{collection_id}/grants", status_code=status.HTTP_204_NO_CONTENT)
async def grant(
    collection_id: uuid.UUID, body: GrantCreate, documents: DocumentsDep, caller: CallerDep
) -> Response:
    """Share a collection with a user or `group:<id>`, to read or to write."""
    await documents.grant(caller, collection_id, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/collections/{collection_id}/grants")
async def list_grants(
    collection_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> list[GrantPublic]:
    """Who the collection is shared with (its owner only)."""
    return await documents.list_grants(caller, collection_id)


@router.delete(
    "/collections/{collection_id}/grants/{grantee}", status_code=status.HTTP_204_NO_CONTENT
)
async def revoke_grant(
    collection_id: uuid.UUID, grantee: str, documents: DocumentsDep, caller: CallerDep
) -> Response:
    """Stop sharing the collection with a user or `group:<id>`."""
    await documents.revoke(caller, collection_id, grantee)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/collections/{collection_id}/documents")
async def upload_document(
    collection_id: uuid.UUID, file: UploadFile, documents: DocumentsDep, caller: CallerDep
) -> JSONResponse:
    """Upload a file; it is ingested in the background (watch its `status`). The same bytes
    uploaded again answer 200 with the existing document instead of 201."""
    data = await file.read()
    document, created = await documents.add_document(
        caller, collection_id, file.filename or "upload", data, file.content_type
    )
    return JSONResponse(
        document.model_dump(mode="json"),
        status_code=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
    )


@router.get("/collections/{collection_id}/documents")
async def list_documents(
    collection_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> list[DocumentPublic]:
    return await documents.list_documents(caller, collection_id)


@router.get("/documents/{document_id}")
async def get_document(
    document_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> DocumentPublic:
    """A document with its ingestion status and progress."""
    return await documents.get_document(caller, document_id)


@router.get("/documents/{document_id}/file")
async def download_document(
    document_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> Response:
    """The uploaded file, with its content type: a PDF or plain text opens in the browser
    (a citation links the PDF at its page, `#page=N`); anything else downloads."""
    stored = await document_file(documents, caller, document_id)
    disposition = "inline" if stored.inline else "attachment"
    headers = {
        "content-disposition": f"{disposition}; filename*=UTF-8''{quote(stored.filename)}",
        "x-content-type-options": "nosniff",
        "cache-control": "private, max-age=300",
    }
    kind = stored.content_type if stored.inline else "application/octet-stream"
    if kind == "text/plain":
        kind = "text/plain; charset=utf-8"
    return Response(stored.data, media_type=kind, headers=headers)


@router.delete("/documents/{document_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_document(
    document_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> Response:
    await documents.delete_document(caller, document_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/documents/{document_id}/reindex")
async def reindex_document(
    document_id: uuid.UUID, documents: DocumentsDep, caller: CallerDep
) -> DocumentPublic:
    """Parse, chunk and embed the document again."""
    return await documents.reindex_document(caller, document_id)


@router.post("/collections/{collection_id}/ask", response_model=None)
async def ask(
    collection_id: uuid.UUID,
    body: AskRequest,
    request: Request,
    documents: DocumentsDep,
    caller: CallerDep,
) -> Answer | StreamingResponse:
    """Answer a question from the collection's documents, with numbered citations.

    Streamed as server-sent events: first `event: citations` (the passages given to the
    model, numbered from 1), then chat completion chunks, then `data: [DONE]`."""
    await documents.get_collection(caller, collection_id)
    state = request.app.state
    model = body.model or state.routes.default_chat_model(state.settings.default_model)
    if model is None:
        raise InvalidRequest("no chat model is served", param="model")
    citations, chunks = await state.answerer.ask(
        caller,
        [collection_id],
        body.question,
        model=model,
        k=body.k,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
    )
    if body.stream:
        return Streamed(
            _ask_events(citations, chunks), media_type="text/event-stream", headers=SSE_HEADERS
        )
    parts: list[str] = []
    usage = None
    async for chunk in chunks:
        parts += [c.delta.content or "" for c in chunk.choices]
        usage = chunk.usage.model_dump() if chunk.usage else usage
    return Answer(model=model, answer="".join(parts), citations=citations, usage=usage)


async def _ask_events(
    citations: list[Citation], chunks: AsyncIterator[ChatCompletionChunk]
) -> AsyncIterator[bytes]:
    payload = TypeAdapter(list[Citation]).dump_json(citations)
    yield b"event: citations\ndata: " + payload + b"\n\n"
    async for event in sse_events(chunks, include_usage=True):
        yield event


@router.post("/collections/{collection_id}/search")
async def search(
    collection_id: uuid.UUID, body: SearchRequest, documents: DocumentsDep, caller: CallerDep
) -> SearchResults:
    """Hybrid (default), vector or full-text search with citations; `explain` (admins)
    adds each result's rank on each side and its scores."""
    if body.explain and not caller.is_admin:
        raise Forbidden("explain is for admins: leave it out, or ask an admin")
    await documents.get_collection(caller, collection_id)  # 404 rather than silently nothing
    results = await documents.search(
        caller, [collection_id], body.query, k=body.k, mode=body.mode, explain=body.explain
    )
    return SearchResults(query=body.query, mode=body.mode, results=results)
