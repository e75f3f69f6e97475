"""The catalog page: models, hardware and deployments for everyone signed in; for admins,
forms to add, edit and delete them (posted with the page's CSRF token, redirected back)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from hearth.catalog.schemas import (
    DeploymentCreate,
    DeploymentUpdate,
    HardwareCreate,
    HardwareUpdate,
    ModelCreate,
    ModelUpdate,
)
from hearth.errors import HearthError, InvalidRequest
from hearth.web._render import checked_form, page, require_user

router = APIRouter(include_in_schema=False)

# kind -> the shapes its add and edit forms fill; the catalog's methods are named after it
# (`create_<kind>`, `update_<kind>`, `delete_<kind>`).
_KINDS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "model": (ModelCreate, ModelUpdate),
    "hardware": (HardwareCreate, HardwareUpdate),
    "deployment": (DeploymentCreate, DeploymentUpdate),
}


@router.get("/catalog", response_class=HTMLResponse)
async def catalog_page(request: Request, done: str = "") -> Response:
    """The catalog as three tables; admins get the forms too."""
    await require_user(request)
    return page(request, "catalog.html", await _context(request, done=done))


@router.post("/catalog", response_class=HTMLResponse)
async def catalog_action(request: Request) -> Response:
    """One form's action: `create_<kind>`, `update_<kind>` or `delete_<kind>` (admins)."""
    await require_user(request, admin=True)
    form = await checked_form(request)
    catalog = request.app.state.catalog
    verb, _, kind = form.pop("action", "").partition("_")
    ref = form.pop("id", "")
    if kind not in _KINDS or verb not in ("create", "update", "delete"):
        raise InvalidRequest(f"unknown action {verb}_{kind}")
    create, patch = _KINDS[kind]
    method = getattr(catalog, f"{verb}_{kind}")
    try:
        if verb == "create":
            values = {k: v for k, v in form.items() if k in create.model_fields and v != ""}
            await method(create.model_validate(values))
        elif verb == "update":
            await method(ref, patch.model_validate(_patch_values(patch, form)))
        else:
            await method(ref)
    except (HearthError, ValidationError) as exc:
        status = exc.status if isinstance(exc, HearthError) else 400
        context = await _context(request, error=_message(exc))
        return page(request, "catalog.html", context, status_code=status)
    return RedirectResponse(f"/catalog?done={verb}", status_code=303)


async def _context(request: Request, **extra: Any) -> dict[str, Any]:
    catalog = request.app.state.catalog
    return {
        "models": await catalog.list_models(),
        "hardware": await catalog.list_hardware(),
        "deployments": await catalog.list_deployments(),
        "count": _count,
        "price": _price,
        **extra,
    }


def _patch_values(shape: type[BaseModel], form: dict[str, str]) -> dict[str, Any]:
    """An edit form's fields as a partial update: every field the form sent, an empty one
    as null where the field may be empty (clearing it), else left out (keeping it)."""
    nullable = getattr(shape, "nullable", frozenset())
    values: dict[str, Any] = {}
    for name in shape.model_fields:
        if name not in form:
            continue
        if form[name] == "" and name in nullable:
            values[name] = None
        elif form[name] != "" or name in ("family", "licence", "source", "notes"):
            values[name] = form[name]
    return values


def _message(exc: HearthError | ValidationError) -> str:
    if isinstance(exc, HearthError):
        return exc.message
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def _count(value: int | None) -> str:
    """135000000 → 135M, 8030000000 → 8.03B."""
    if value is None:
        return "—"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return str(value)


def _price(value: float | None) -> str:
    """USD to the cent; below a cent (a spot price per replica), to a hundredth of one."""
    if value is None:
        return "—"
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"
