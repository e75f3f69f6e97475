"""Presets pages: the list (yours and those shared with your groups), a form to create one
and to change it (model, system prompt, parameters, collections, groups), delete; each
preset starts a chat (`/?preset=<id>` preselects it in the chat page's model picker)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hearth.accounts.sessions import SignedIn
from hearth.errors import HearthError, InvalidRequest
from hearth.presets.schemas import PresetCreate, PresetPublic, PresetUpdate
from hearth.web._render import checked_form, page, require_user

router = APIRouter(include_in_schema=False)


@router.get("/presets", response_class=HTMLResponse)
async def presets_page(request: Request, done: str = "") -> Response:
    user = await require_user(request)
    return await _render(request, user, "presets.html", {"done": done})


@router.post("/presets", response_class=HTMLResponse)
async def create_preset(request: Request) -> Response:
    user = await require_user(request)
    values = await _posted(request, await checked_form(request))
    try:
        created = await request.app.state.presets.create(user.principal, PresetCreate(**values))
    except (HearthError, ValidationError) as exc:
        context = {"error": _message(exc), "draft": values}
        return await _render(request, user, "presets.html", context, status_code=_status(exc))
    return RedirectResponse(f"/presets/{created.id}?done=created", status_code=303)


@router.get("/presets/{preset_id}", response_class=HTMLResponse)
async def preset_page(request: Request, preset_id: uuid.UUID, done: str = "") -> Response:
    user = await require_user(request)
    preset = await request.app.state.presets.get(user.principal, preset_id)
    context = {"preset": preset, "draft": preset.model_dump(), "done": done}
    return await _render(request, user, "preset.html", context)


@router.post("/presets/{preset_id}", response_class=HTMLResponse)
async def preset_action(request: Request, preset_id: uuid.UUID) -> Response:
    user = await require_user(request)
    presets = request.app.state.presets
    form = await checked_form(request)
    action = form.get("action")
    if action == "delete":
        await presets.delete(user.principal, preset_id)
        return RedirectResponse("/presets?done=deleted", status_code=303)
    if action != "save":
        raise InvalidRequest(f"unknown action {action!r}")
    values = await _posted(request, form)
    try:
        await presets.update(user.principal, preset_id, PresetUpdate(**values))
    except (HearthError, ValidationError) as exc:
        preset = await presets.get(user.principal, preset_id)
        context = {"preset": preset, "draft": values, "error": _message(exc)}
        return await _render(request, user, "preset.html", context, status_code=_status(exc))
    return RedirectResponse(f"/presets/{preset_id}?done=saved", status_code=303)


async def _posted(request: Request, form: dict[str, str]) -> dict[str, Any]:
    """The (checked) form's fields as the API's body: an empty setting is null (the site's)."""
    lists = await request.form()  # parsed once and kept: the checkboxes' many values
    optional = ("system_prompt", "temperature", "max_tokens")
    values: dict[str, Any] = {
        "name": form.get("name", ""),
        "description": form.get("description", ""),
        "model": form.get("model", ""),
        **{name: form.get(name, "").strip() or None for name in optional},
        "collection_ids": lists.getlist("collection_ids"),
        "group_ids": lists.getlist("group_ids"),
    }
    if values["system_prompt"] is not None:
        values["system_prompt"] = form["system_prompt"]  # as written, inner spaces kept
    return values


def _status(exc: Exception) -> int:
    return exc.status if isinstance(exc, HearthError) else 400


def _message(exc: Exception) -> str:
    if isinstance(exc, HearthError):
        return exc.message
    assert isinstance(exc, ValidationError)
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "preset"
    return f"{field}: {first['msg']}"


async def _render(
    request: Request,
    user: SignedIn,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> Response:
    """A presets page with what its form offers: the served chat models, the collections
    the user may read, and their groups (every group, for an administrator)."""
    state = request.app.state
    principal = user.principal
    groups = [
        g for g in await state.users.list_groups() if principal.is_admin or g.id in principal.groups
    ]
    presets: list[PresetPublic] = await state.presets.list(principal)
    context = {
        "presets": presets,
        "models": [r.model.name for r in state.routes.all() if r.model.type == "chat"],
        "collections": await state.documents.list_collections(principal),
        "groups": groups,
        "group_names": {g.id: g.name for g in groups},
        "draft": {},
        **context,
    }
    return page(request, template, context, status_code=status_code)
