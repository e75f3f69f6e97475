"""The web application: server-rendered pages (Jinja2), small hand-written scripts and
styles, nothing fetched from anywhere else. Pages call the same services as `/api`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from hearth.web._render import ASSETS, SignInRequired, error_page, sign_in_redirect
from hearth.web.admin_pages import router as admin_router
from hearth.web.auth_pages import router as auth_router
from hearth.web.catalog_pages import router as catalog_router
from hearth.web.chat_pages import router as chat_router
from hearth.web.collection_pages import router as collection_router
from hearth.web.lab_pages import router as lab_router
from hearth.web.preset_pages import router as preset_router


async def _favicon() -> Response:
    """Browsers ask for /favicon.ico whatever a page links (and so do the API docs)."""
    return RedirectResponse("/static/favicon.svg", status_code=301)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return sign_in_redirect(exc.next_url)


def install_web(app: FastAPI) -> None:
    app.include_router(auth_router)
    app.include_router(chat_router)
    app.include_router(admin_router)
    app.include_router(collection_router)
    app.include_router(catalog_router)
    app.include_router(lab_router)
    app.include_router(preset_router)
    app.mount("/static", ASSETS, name="static")
    app.add_api_route("/favicon.ico", _favicon, include_in_schema=False)
    app.add_exception_handler(SignInRequired, _sign_in_required)
    app.state.error_page = error_page
