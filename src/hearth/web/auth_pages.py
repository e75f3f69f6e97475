"""Sign-in, sign-up and sign-out pages (server-rendered forms)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from hearth.accounts.auth import set_session_cookie, sign_up, signed_in_user, start_session
from hearth.accounts.oidc import STATE_COOKIE, STATE_SECONDS, SignOnFailed
from hearth.accounts.sessions import COOKIE
from hearth.accounts.users import SignUp
from hearth.errors import HearthError
from hearth.web._render import checked_form, page

router = APIRouter(include_in_schema=False)


def _safe_next(value: str | None) -> str:
    # Only paths on this site: "//evil.example" or "https://..." would be an open redirect.
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/") -> Response:
    if await signed_in_user(request):
        return RedirectResponse(_safe_next(next), status_code=303)
    if await request.app.state.users.count() == 0:
        return RedirectResponse("/signup", status_code=303)
    return page(request, "login.html", {"next": _safe_next(next)})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await checked_form(request)
    target = _safe_next(form.get("next"))
    try:
        _, cookie = await start_session(request, form.get("email", ""), form.get("password", ""))
    except HearthError as exc:
        context = {"error": exc.message, "email": form.get("email", ""), "next": target}
        return page(request, "login.html", context, status_code=exc.status)
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(request, response, cookie)
    return response


@router.get("/signup", response_class=HTMLResponse)
async def signup_page(request: Request) -> Response:
    first = await request.app.state.users.count() == 0
    site = await request.app.state.site.get()
    invite = request.query_params.get("invite", "")[:100]
    context = {"first": first, "mode": site.signup_mode, "invite": invite}
    return page(request, "signup.html", context)


@router.post("/signup", response_class=HTMLResponse)
async def signup(request: Request) -> Response:
    form = await checked_form(request)
    site = await request.app.state.site.get()
    first = await request.app.state.users.count() == 0
    context = {
        "first": first,
        "mode": site.signup_mode,
        "email": form.get("email", ""),
        "name": form.get("name", ""),
        "invite": form.get("invite", "")[:100],
    }
    try:
        body = SignUp(
            email=form.get("email", ""),
            name=form.get("name", ""),
            password=form.get("password", ""),
            invite=form.get("invite") or None,
        )
        signed_up = await sign_up(request, body)
    except ValidationError as exc:
        context["error"] = "Enter a valid email address."
        if any(e["loc"] == ("name",) for e in exc.errors()):
            context["error"] = "Names have at most 200 characters."
        return page(request, "signup.html", context, status_code=400)
    except HearthError as exc:
        context["error"] = exc.message
        return page(request, "signup.html", context, status_code=exc.status)
    account = signed_up.account
    if account is None or account.status != "active":
        # A taken email, an uninvited one or an account waiting for approval: one page,
        # whose words depend on the site's settings only.
        return page(request, "signup_received.html", {"received": signed_up.received})
    # The password was just hashed: start the session directly, not by checking it again.
    sessions = request.app.state.sessions
    cookie = await sessions.create(account.id, user_agent=request.headers.get("user-agent"))
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, cookie)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await checked_form(request)
    sessions = request.app.state.sessions
    user = await signed_in_user(request)
    if user is not None and form.get("everywhere"):
        await sessions.revoke_all(user.user_id)
    else:
        await sessions.revoke(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    set_session_cookie(request, response, None)
    return response


@router.get("/auth/oidc/login", name="oidc_login")
async def oidc_login(request: Request, next: str = "/") -> Response:
    """Go to the identity provider to sign in."""
    oidc = request.app.state.oidc
    if oidc is None:
        return RedirectResponse("/login", status_code=303)
    redirect_uri = str(request.url_for("oidc_callback"))
    url, state = await oidc.start(redirect_uri)
    response = RedirectResponse(url, status_code=303)
    sealed = request.app.state.sessions.seal({**state, "next": _safe_next(next)}, ttl=STATE_SECONDS)
    response.set_cookie(
        STATE_COOKIE,
        sealed,
        max_age=STATE_SECONDS,
        httponly=True,
        samesite="lax",  # the provider's redirect back is a top-level navigation
        secure=request.url.scheme == "https",
        path="/auth/oidc",
    )
    return response


@router.get("/auth/oidc/callback", name="oidc_callback")
async def oidc_callback(
    request: Request, code: str = "", state: str = "", error: str = ""
) -> Response:
    """The identity provider sends the browser back here with a code to exchange."""
    state_store = request.app.state
    if state_store.oidc is None:
        return RedirectResponse("/login", status_code=303)
    kept = state_store.sessions.unseal(request.cookies.get(STATE_COOKIE)) or {}
    try:
        if error:
            raise SignOnFailed(f"The identity provider said: {error}")
        redirect_uri = str(request.url_for("oidc_callback"))
        identity = await state_store.oidc.finish(redirect_uri, code, state, kept)
        user = await state_store.users.sign_on(identity, await state_store.site.get())
    except HearthError as exc:
        response = page(
            request, "login.html", {"error": exc.message, "next": "/"}, status_code=exc.status
        )
        response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
        return response
    cookie = await state_store.sessions.create(
        user.id, user_agent=request.headers.get("user-agent")
    )
    response = RedirectResponse(kept.get("next", "/"), status_code=303)
    response.delete_cookie(STATE_COOKIE, path="/auth/oidc")
    set_session_cookie(request, response, cookie)
    return response
