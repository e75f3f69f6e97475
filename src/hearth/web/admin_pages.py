"""Account and administration pages: the user's own password, sessions and API keys; for
admins, users (approve, role, disable, reset password), groups, API keys of everyone,
engines and models, and site settings. Plain forms, posted and redirected back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hearth.accounts.auth import set_session_cookie
from hearth.accounts.invitations import INVITE_DAYS
from hearth.accounts.keys import KeyCreate
from hearth.accounts.users import TeamLimits, UserCreate, UserCreated, UserUpdate
from hearth.admin.service import SiteSettingsUpdate
from hearth.errors import HearthError, InvalidRequest
from hearth.gateway.usage_report import UsageReport
from hearth.web._charts import bar_chart
from hearth.web._render import checked_form, page, require_user

router = APIRouter(include_in_schema=False)


def _back(path: str, message: str = "") -> RedirectResponse:
    suffix = f"?done={message}" if message else ""
    return RedirectResponse(path + suffix, status_code=303)


# -- the user's own account ---------------------------------------------------------------


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, done: str = "", key: str = "") -> Response:
    user = await require_user(request)
    keys = await request.app.state.keys.list(user.principal)
    return page(request, "account.html", {"keys": keys, "done": done, "new_key": key})


@router.post("/account", response_class=HTMLResponse)
async def account_action(request: Request) -> Response:
    user = await require_user(request)
    form = await checked_form(request)
    state = request.app.state
    action = form.get("action")
    try:
        if action == "password":
            if form.get("new_password") != form.get("confirm_password"):
                raise InvalidRequest("The new passwords do not match.")
            await state.users.change_password(
                user.user_id, form.get("current_password", ""), form.get("new_password", "")
            )
            await state.sessions.revoke_all(user.user_id)
            response = _back("/account", "password")
            cookie = await state.sessions.create(
                user.user_id, user_agent=request.headers.get("user-agent")
            )
            set_session_cookie(request, response, cookie)
            return response
        if action == "create_key":
            created = await state.keys.create(
                user.principal, KeyCreate(name=form.get("name") or "key")
            )
            # Shown once, on the page this renders; never put in a URL or a log.
            keys = await state.keys.list(user.principal)
            return page(request, "account.html", {"keys": keys, "new_key": created.key})
        if action == "revoke_key":
            await state.keys.revoke(user.principal, form.get("key", ""))
            return _back("/account", "revoked")
    except (HearthError, ValidationError) as exc:
        message = exc.message if isinstance(exc, HearthError) else "Invalid input."
        keys = await state.keys.list(user.principal)
        status = exc.status if isinstance(exc, HearthError) else 400
        return page(request, "account.html", {"keys": keys, "error": message}, status_code=status)
    raise InvalidRequest(f"unknown action {action!r}")


# -- administration -----------------------------------------------------------------------


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request, q: str = "", done: str = "") -> Response:
    await require_user(request, admin=True)
    state = request.app.state
    context = {
        "users": await state.users.list(query=q, limit=200),
        "groups": await state.users.list_groups(),
        "site": await state.site.get(),
        "models": [r.model.name for r in state.routes.all() if r.model.type == "chat"],
        "served": _models(request),
        "q": q,
        "done": done,
    }
    return page(request, "admin.html", context)


@router.post("/admin", response_class=HTMLResponse)
async def admin_action(request: Request) -> Response:
    admin = await require_user(request, admin=True)
    form = await checked_form(request)
    state = request.app.state
    action = form.get("action", "")
    user_id = form.get("user_id", "")
    try:
        if action in ("approve", "enable"):
            await state.users.update(admin.principal, user_id, UserUpdate(status="active"))
        elif action == "disable":
            await state.users.update(admin.principal, user_id, UserUpdate(status="disabled"))
            await state.sessions.revoke_all(user_id)
        elif action == "role":
            role = "admin" if form.get("role") == "admin" else "user"
            await state.users.update(admin.principal, user_id, UserUpdate(role=role))
        elif action == "reset_password":
            await state.users.update(
                admin.principal, user_id, UserUpdate(password=form.get("password", ""))
            )
            await state.sessions.revoke_all(user_id)
        elif action == "delete_user":
            await state.users.delete(admin.principal, user_id)
        elif action == "create_user":
            created = await state.users.create(
                UserCreate(
                    email=form.get("email", ""),
                    name=form.get("name", ""),
                    password=form.get("password") or None,
                    role="admin" if form.get("role") == "admin" else "user",
                ),
                status="active" if form.get("password") else "pending",
            )
            if created.invitation_link:
                return _invitation(request, created)
        elif action == "invite_again":
            return _invitation(request, await state.users.invite_again(user_id))
        elif action == "create_group":
            await state.users.create_group(form.get("name", ""))
        elif action in ("add_member", "remove_member"):
            await state.users.set_member(
                form.get("group_id", ""), user_id, member=action == "add_member"
            )
        elif action == "team_limits":
            await state.users.set_team_limits(
                form.get("group_id", ""),
                TeamLimits(
                    requests_per_minute=_optional_int(form.get("requests_per_minute")),
                    tokens_per_minute=_optional_int(form.get("tokens_per_minute")),
                    max_concurrent=_optional_int(form.get("max_concurrent")),
                    budget=float(form["budget"]) if form.get("budget") else None,
                    budget_period=form.get("budget_period") or None,
                ),
            )
        elif action == "settings":
            await state.site.update(
                SiteSettingsUpdate(
                    signup_mode=form.get("signup_mode"),
                    approve_new_users=form.get("approve_new_users") == "on",
                    default_model=form.get("default_model") or None,
                    system_prompt=form.get("system_prompt", ""),
                    rag_top_k=int(form.get("rag_top_k") or 5),
                    answer_max_tokens=int(form.get("answer_max_tokens") or 1024),
                )
            )
        else:
            raise InvalidRequest(f"unknown action {action!r}")
    except (HearthError, ValidationError, ValueError) as exc:
        message = exc.message if isinstance(exc, HearthError) else "Invalid input."
        status = exc.status if isinstance(exc, HearthError) else 400
        return page(
            request, "error.html", {"status": status, "message": message}, status_code=status
        )
    return _back("/admin", action)


@router.get("/admin/usage", response_class=HTMLResponse)
async def admin_usage(request: Request, days: int = 30) -> Response:
    """Requests, tokens and cost per day; the top users, keys and models."""
    await require_user(request, admin=True)
    days = max(1, min(days, 366))
    since = datetime.now(UTC) - timedelta(days=days)
    report = UsageReport(request.app.state.database)
    daily = await report.daily(since)
    top = {by: await report.top(by, since) for by in ("owner", "key", "model", "end_user")}
    emails = await request.app.state.users.emails([t.label for t in top["owner"]])
    charts = {
        "requests": bar_chart([(d.label, d.requests) for d in daily], title="Requests per day"),
        "tokens": bar_chart([(d.label, d.tokens) for d in daily], title="Tokens per day"),
        "cost": bar_chart(
            [(d.label, d.cost) for d in daily],
            title="Cost per day",
            when_zero="No priced usage yet: a model's requests cost what its "
            "input_price and output_price (per million tokens) say; none is set.",
        ),
    }
    context = {"days": days, "daily": daily, "top": top, "emails": emails, "charts": charts}
    return page(request, "admin_usage.html", context)


@router.get("/admin/keys", response_class=HTMLResponse)
async def admin_keys(request: Request) -> Response:
    admin = await require_user(request, admin=True)
    keys = await request.app.state.keys.list(admin.principal, everyone=True)
    emails = await request.app.state.users.emails(list({k.owner_id for k in keys}))
    return page(request, "admin_keys.html", {"keys": keys, "emails": emails})


@router.get("/admin/collections", response_class=HTMLResponse)
async def admin_collections(request: Request) -> Response:
    """Every collection, its owner and size: also those made at the command line."""
    admin = await require_user(request, admin=True)
    collections = await request.app.state.documents.all_collections(admin.principal)
    emails = await request.app.state.users.emails(list({c.owner_id for c in collections}))
    return page(request, "admin_collections.html", {"collections": collections, "emails": emails})


@router.post("/admin/keys", response_class=HTMLResponse)
async def admin_revoke_key(request: Request) -> Response:
    admin = await require_user(request, admin=True)
    form = await checked_form(request)
    await request.app.state.keys.revoke(admin.principal, form.get("key", ""), everyone=True)
    return RedirectResponse("/admin/keys", status_code=303)


def _invitation(request: Request, created: UserCreated) -> Response:
    """The invitation's link, shown once: only its hash is kept."""
    link = str(request.base_url).rstrip("/") + (created.invitation_link or "")
    context = {"invited": created, "link": link, "days": INVITE_DAYS}
    return page(request, "admin_invitation.html", context)


def _optional_int(value: str | None) -> int | None:
    return int(value) if value else None


def _models(request: Request) -> list[dict]:
    """Each served model with its deployments: engine, weight, health, requests in flight
    and what the engine reports (running, waiting)."""
    gateway = request.app.state.gateway
    balancer = gateway.balancer
    served = []
    for model in request.app.state.routes.models():
        deployments = []
        for d in model.deployments:
            load = balancer.health.loads.get(d.id)
            deployments.append(
                {
                    "engine": d.id,
                    "kind": type(d.engine).__name__,
                    "upstream": d.upstream,
                    "weight": d.model.weight,
                    "health": balancer.health.state(d.id, model.name),
                    "in_flight": balancer.in_flight.count(d.id),
                    "running": load.running if load else None,
                    "waiting": load.waiting if load else None,
                }
            )
        served.append(
            {
                "name": model.name,
                "type": model.type,
                "deployments": deployments,
                "fallbacks": model.fallbacks,
            }
        )
    return served
