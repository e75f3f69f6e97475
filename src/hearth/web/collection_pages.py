"""Collections pages: create, share with people or groups, upload (with progress, through
`/api` from `static/collections.js`), see documents and their status, delete."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hearth.accounts.principal import Principal
from hearth.accounts.users import GroupPublic
from hearth.errors import HearthError, InvalidRequest, NotFound
from hearth.rag.schemas import CollectionCreate, GrantCreate
from hearth.rag.viewing import document_passages
from hearth.web._render import checked_form, page, require_user

router = APIRouter(include_in_schema=False)


@router.get("/collections", response_class=HTMLResponse)
async def collections_page(request: Request) -> Response:
    user = await require_user(request)
    collections = await request.app.state.documents.list_collections(user.principal)
    return page(request, "collections.html", {"collections": collections})


@router.post("/collections", response_class=HTMLResponse)
async def create_collection(request: Request) -> Response:
    user = await require_user(request)
    form = await checked_form(request)
    documents = request.app.state.documents
    try:
        body = CollectionCreate(name=form.get("name", ""), description=form.get("description", ""))
        created = await documents.create_collection(user.principal, body)
    except (HearthError, ValidationError) as exc:
        message = exc.message if isinstance(exc, HearthError) else "A collection needs a name."
        collections = await documents.list_collections(user.principal)
        return page(
            request,
            "collections.html",
            {"collections": collections, "error": message},
            status_code=400,
        )
    return RedirectResponse(f"/collections/{created.id}", status_code=303)


@router.get("/collections/{collection_id}", response_class=HTMLResponse)
async def collection_page(request: Request, collection_id: uuid.UUID, done: str = "") -> Response:
    user = await require_user(request)
    documents = request.app.state.documents
    collection = await documents.get_collection(user.principal, collection_id)
    owner = collection.owner_id == user.user_id
    groups = await _groups_of(request, user.principal) if owner else []
    context = {
        "collection": collection,
        "documents": await documents.list_documents(user.principal, collection_id),
        "owner": owner,
        "groups": groups,
        "grants": await _grants(request, user.principal, collection_id, groups) if owner else [],
        "people": await request.app.state.users.people(user.principal) if owner else [],
        "done": done,
    }
    return page(request, "collection.html", context)


@router.get("/documents/{document_id}", response_class=HTMLResponse)
async def document_page(
    request: Request, document_id: uuid.UUID, passage: int | None = None
) -> Response:
    """A document's passages in order, the cited one (`?passage=`) highlighted."""
    user = await require_user(request)
    document, passages = await document_passages(
        request.app.state.documents, user.principal, document_id
    )
    context = {"document": document, "passages": passages, "highlighted": passage}
    return page(request, "document.html", context)


@router.post("/collections/{collection_id}", response_class=HTMLResponse)
async def collection_action(request: Request, collection_id: uuid.UUID) -> Response:
    user = await require_user(request)
    form = await checked_form(request)
    documents = request.app.state.documents
    action = form.get("action")
    if action == "share":
        who = form.get("group") or ""
        if not who:
            person = await request.app.state.users.find_person(
                user.principal, form.get("email", "")
            )
            who = person.id
        permission = "write" if form.get("permission") == "write" else "read"
        await documents.grant(
            user.principal, collection_id, GrantCreate(principal=who, permission=permission)
        )
        return RedirectResponse(f"/collections/{collection_id}?done=shared", status_code=303)
    if action == "revoke":
        await documents.revoke(user.principal, collection_id, form.get("principal", ""))
        return RedirectResponse(f"/collections/{collection_id}?done=revoked", status_code=303)
    if action == "delete_document":
        await documents.delete_document(user.principal, uuid.UUID(form.get("document_id", "")))
        return RedirectResponse(f"/collections/{collection_id}", status_code=303)
    if action == "delete_collection":
        await documents.delete_collection(user.principal, collection_id)
        return RedirectResponse("/collections", status_code=303)
    raise InvalidRequest(f"unknown action {action!r}")


async def _groups_of(request: Request, principal: Principal) -> list[GroupPublic]:
    """The groups one may share with: one's own (every group, for an administrator)."""
    groups = await request.app.state.users.list_groups()
    return [g for g in groups if principal.is_admin or g.id in principal.groups]


async def _grants(
    request: Request, principal: Principal, collection_id: uuid.UUID, groups: list[GroupPublic]
) -> list[dict[str, str]]:
    """The collection's grants with a name to show: the person's email, or the group's."""
    group_names = {f"group:{g.id}": g.name for g in groups}
    shown = []
    for grant in await request.app.state.documents.list_grants(principal, collection_id):
        name = group_names.get(grant.principal)
        if name is None and not grant.principal.startswith("group:"):
            try:
                name = (await request.app.state.users.get(grant.principal)).email
            except NotFound:
                name = "(deleted account)"
        shown.append(
            {
                "principal": grant.principal,
                "name": name or grant.principal,
                "permission": grant.permission,
            }
        )
    return shown
