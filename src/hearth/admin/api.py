"""Site settings (`/api/settings`): read by everyone signed in, changed by admins."""

from __future__ import annotations

from fastapi import APIRouter, Request

from hearth.accounts.auth import AdminDep, CallerDep
from hearth.admin.service import SiteSettings, SiteSettingsUpdate

router = APIRouter(prefix="/api/settings", tags=["admin"])


@router.get("")
async def get_settings(request: Request, caller: CallerDep) -> SiteSettings:
    return await request.app.state.site.get()


@router.patch("")
async def update_settings(
    body: SiteSettingsUpdate, request: Request, admin: AdminDep
) -> SiteSettings:
    """Change settings; every replica sees the change within two seconds."""
    return await request.app.state.site.update(body)
