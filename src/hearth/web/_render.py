"""What every page shares: the templates, the signed-in user, CSRF tokens for forms, and
the redirect to the sign-in page."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context
from markupsafe import Markup

from hearth.accounts.auth import signed_in_user
from hearth.accounts.sessions import COOKIE, CSRF_COOKIE, SignedIn
from hearth.chat.citations import cited_numbers, link_citations
from hearth.chat.markdown import render_markdown
from hearth.errors import Forbidden
from hearth.web._static import Assets

STATIC_DIR = Path(__file__).parent / "static"
ASSETS = Assets(STATIC_DIR)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
_url_for = templates.env.globals["url_for"]


@pass_context
def _versioned_url_for(context: dict[str, Any], name: str, /, **params: Any) -> Any:
    """`url_for`, with the static files' URLs versioned by their content (hearth.web._static)."""
    url = _url_for(context, name, **params)
    if name == "static":
        url = url.include_query_params(v=ASSETS.version(params["path"]))
    return url


templates.env.globals["url_for"] = _versioned_url_for
templates.env.filters["markdown"] = lambda text: Markup(render_markdown(text or ""))


def _answer_html(message: Any) -> Markup:
    """An answer's Markdown as HTML, its `[n]` linked to its sources."""
    count = len(message.citations or [])
    html = render_markdown(message.content or "")
    return Markup(link_citations(html, message.id, count))


def _cited(message: Any) -> list[int]:
    return cited_numbers(message.content or "", len(message.citations or []))


templates.env.filters["answer_html"] = _answer_html
templates.env.filters["cited"] = _cited


# Pages load scripts and styles only from this site; nothing inline, no frames around them.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


class SignInRequired(Exception):
    """Raised by `require_user`; the app turns it into a redirect to the sign-in page."""

    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


async def require_user(request: Request, *, admin: bool = False) -> SignedIn:
    user = await signed_in_user(request)
    if user is None:
        raise SignInRequired(request.url.path)
    if admin and not user.principal.is_admin:
        raise Forbidden("Only administrators may open this page.")
    return user


def sign_in_redirect(next_url: str) -> RedirectResponse:
    return RedirectResponse(f"/login?next={quote(next_url)}", status_code=303)


def page(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a page with the user and a CSRF token for its forms. Before sign-in the
    token is a random cookie doubled in the form (set here if missing)."""
    user = getattr(request.state, "signed_in", None)
    sessions = request.app.state.sessions
    anonymous_token = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    csrf = sessions.csrf_token(request.cookies.get(COOKIE)) if user else anonymous_token
    response = templates.TemplateResponse(
        request,
        template,
        {
            "user": user,
            "csrf_token": csrf,
            "sign_on": request.app.state.settings.oidc_provider_name
            if request.app.state.oidc is not None
            else None,
            **(context or {}),
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    if user is None and CSRF_COOKIE not in request.cookies:
        response.set_cookie(
            CSRF_COOKIE, anonymous_token, httponly=True, samesite="strict", path="/"
        )
    return response


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form, once its CSRF token is checked (session-bound when signed in,
    double-submitted cookie before)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    presented = values.pop("csrf_token", "")
    user = await signed_in_user(request)
    if user is not None:
        valid = request.app.state.sessions.check_csrf(request.cookies.get(COOKIE), presented)
    else:
        expected = request.cookies.get(CSRF_COOKIE, "")
        valid = bool(expected) and secrets.compare_digest(expected, presented)
    if not valid:
        raise Forbidden("The form expired or came from another site; reload the page and retry.")
    return values


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return page(request, "error.html", {"status": status, "message": message}, status_code=status)
