"""Preset routes (`/api/presets`): the web pages call the same service."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import Response

from hearth.accounts.auth import CallerDep
from hearth.presets.schemas import PresetCreate, PresetPublic, PresetUpdate
from hearth.presets.service import Presets

router = APIRouter(prefix="/api/presets", tags=["presets"])


def _presets(request: Request) -> Presets:
    return request.app.state.presets


PresetsDep = Annotated[Presets, Depends(_presets)]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_preset(body: PresetCreate, presets: PresetsDep, caller: CallerDep) -> PresetPublic:
    """Save a preset: a base model served here (else a 400 naming it), a system prompt,
    temperature, answer length, collections you may read, and the groups of yours whose
    members may use it. Start a chat from it with `POST /api/chats {"preset_id": ...}`."""
    return await presets.create(caller, body)


@router.get("")
async def list_presets(presets: PresetsDep, caller: CallerDep) -> list[PresetPublic]:
    """Your presets, then those shared with a group you are in; `owned` tells them apart."""
    return await presets.list(caller)


@router.get("/{preset_id}")
async def get_preset(preset_id: uuid.UUID, presets: PresetsDep, caller: CallerDep) -> PresetPublic:
    return await presets.get(caller, preset_id)


@router.patch("/{preset_id}")
async def update_preset(
    preset_id: uuid.UUID, body: PresetUpdate, presets: PresetsDep, caller: CallerDep
) -> PresetPublic:
    """Change a preset (its owner or an administrator; others who see it get a 403)."""
    return await presets.update(caller, preset_id, body)


@router.delete("/{preset_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_preset(preset_id: uuid.UUID, presets: PresetsDep, caller: CallerDep) -> Response:
    """Delete a preset (its owner or an administrator); chats started from it keep their
    settings."""
    await presets.delete(caller, preset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
