"""HTML routes. For now the one page: chat with a served model, streamed."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

STATIC_DIR = Path(__file__).parent / "static"
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def chat_page(request: Request) -> HTMLResponse:
    state = request.app.state
    chat_models = [r.model.name for r in state.routes.all() if r.model.type == "chat"]
    default = state.routes.default_chat_model(state.settings.default_model)
    return templates.TemplateResponse(
        request, "chat.html", {"models": chat_models, "default_model": default}
    )
