"""Presets: create, list, read, change and delete; who may see them is decided inside the
SQL that reads them. A preset is its owner's, and visible to the members of the groups it
is shared with (another user's unshared preset is simply not found); only its owner and
administrators change or delete it.

A chat starts from a preset by copying its values (`chat_from_preset`): a preset changed or
deleted later leaves the chats made from it as they are.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select

from hearth.accounts.principal import Principal
from hearth.accounts.users import Users
from hearth.chat.schemas import ChatCreate
from hearth.db.session import Database
from hearth.errors import Forbidden, InvalidRequest, NotFound
from hearth.gateway.routing import ModelRoutes
from hearth.presets.models import ChatPreset, PresetShare
from hearth.presets.schemas import PresetCreate, PresetPublic, PresetUpdate
from hearth.rag.service import Documents

# Told the ids of presets just deleted (the chats made from them forget them).
OnDelete = Callable[[list[uuid.UUID]], Awaitable[None]]


@dataclass(frozen=True)
class PresetStart:
    """What a chat started from a preset takes: its values, less the collections the one
    starting it may not read (`left_out`)."""

    preset: PresetPublic
    collection_ids: list[uuid.UUID]
    left_out: list[uuid.UUID] = field(default_factory=list)


class Presets:
    def __init__(
        self, database: Database, *, documents: Documents, routes: ModelRoutes, users: Users
    ) -> None:
        self.database = database
        self.documents = documents
        self.routes = routes
        self.users = users
        self._on_delete: list[OnDelete] = []

    def on_delete(self, hook: OnDelete) -> None:
        self._on_delete.append(hook)

    async def create(self, principal: Principal, body: PresetCreate) -> PresetPublic:
        """A preset owned by the caller: its model served here, its collections readable by
        the caller, its groups the caller's."""
        self._check_model(body.model)
        collection_ids = await self._check_collections(principal, body.collection_ids)
        group_ids = list(dict.fromkeys(body.group_ids))
        await self._check_groups(principal, group_ids)
        preset = ChatPreset(
            id=uuid.uuid4(),
            owner_id=principal.user_id,
            name=body.name,
            description=body.description,
            model=body.model,
            system_prompt=body.system_prompt,
            temperature=body.temperature,
            max_tokens=body.max_tokens,
            collection_ids=collection_ids,
        )
        async with self.database.session() as session:
            session.add(preset)
            await session.flush()
            session.add_all(PresetShare(preset_id=preset.id, group_id=g) for g in group_ids)
            await session.commit()
            await session.refresh(preset)
        return _public(preset, group_ids, principal)

    async def list(self, principal: Principal) -> list[PresetPublic]:
        """The caller's presets, then those shared with a group of theirs, by name. (An
        administrator lists these too, not everyone's.)"""
        statement = (
            _mine_or_shared(principal)
            .order_by(
                ChatPreset.owner_id != principal.user_id, func.lower(ChatPreset.name), ChatPreset.id
            )
            .limit(1000)
        )
        async with self.database.read() as session:
            presets = list(await session.scalars(statement))
            shares = await _shares(session, [p.id for p in presets])
        return [_public(p, shares.get(p.id, []), principal) for p in presets]

    async def get(self, principal: Principal, preset_id: uuid.UUID) -> PresetPublic:
        async with self.database.read() as session:
            preset = await session.scalar(_visible(principal).where(ChatPreset.id == preset_id))
            if preset is None:
                raise NotFound(f"no preset {preset_id}")
            shares = await _shares(session, [preset_id])
        return _public(preset, shares.get(preset_id, []), principal)

    async def start(self, principal: Principal, preset_id: uuid.UUID) -> PresetStart:
        """A preset as a chat of the caller's starts from it: the collections the caller may
        not read (not shared with them, or deleted) are left out, and named."""
        preset = await self.get(principal, preset_id)
        readable, left_out = [], []
        for collection_id in preset.collection_ids:
            try:
                await self.documents.get_collection(principal, collection_id)
                readable.append(collection_id)
            except NotFound:
                left_out.append(collection_id)
        return PresetStart(preset=preset, collection_ids=readable, left_out=left_out)

    async def update(
        self, principal: Principal, preset_id: uuid.UUID, body: PresetUpdate
    ) -> PresetPublic:
        """Change a preset (its owner or an administrator); `group_ids` replaces the groups
        it is shared with. Chats made from it keep what they copied."""
        values = body.model_dump(exclude_unset=True)
        group_ids = values.pop("group_ids", None)
        if "model" in values:
            self._check_model(values["model"])
        if "collection_ids" in values:
            values["collection_ids"] = await self._check_collections(
                principal, values["collection_ids"]
            )
        async with self.database.session() as session:
            preset = await _editable(session, principal, preset_id)
            shares = (await _shares(session, [preset_id])).get(preset_id, [])
            if group_ids is not None:
                group_ids = list(dict.fromkeys(group_ids))
                # Groups it is already shared with may stay (its owner may have left one).
                await self._check_groups(principal, [g for g in group_ids if g not in shares])
                await session.execute(
                    delete(PresetShare).where(
                        PresetShare.preset_id == preset_id, PresetShare.group_id.not_in(group_ids)
                    )
                )
                session.add_all(
                    PresetShare(preset_id=preset_id, group_id=g)
                    for g in group_ids
                    if g not in shares
                )
                shares = group_ids
            for name, value in values.items():
                setattr(preset, name, value)
            preset.updated_at = func.now()
            await session.commit()
            await session.refresh(preset)
        return _public(preset, shares, principal)

    async def delete(self, principal: Principal, preset_id: uuid.UUID) -> None:
        """Delete a preset (its owner or an administrator). Chats made from it keep their
        model, settings and collections."""
        async with self.database.session() as session:
            preset = await _editable(session, principal, preset_id)
            await session.delete(preset)
            await session.commit()
        await self._deleted([preset_id])

    async def erase_owner(self, user_id: str) -> None:
        """Delete every preset of an account being deleted."""
        async with self.database.session() as session:
            result = await session.execute(
                delete(ChatPreset).where(ChatPreset.owner_id == user_id).returning(ChatPreset.id)
            )
            deleted = list(result.scalars())
            await session.commit()
        if deleted:
            await self._deleted(deleted)

    async def _deleted(self, preset_ids: list[uuid.UUID]) -> None:
        for hook in self._on_delete:
            await hook(preset_ids)

    def _check_model(self, model: str) -> None:
        served = {r.model.name for r in self.routes.all() if r.model.type == "chat"}
        if model not in served:
            raise InvalidRequest(f"'{model}' is not a chat model served here.", param="model")

    async def _check_collections(
        self, principal: Principal, collection_ids: Iterable[uuid.UUID]
    ) -> list[uuid.UUID]:
        """The collections, once each; NotFound for one the caller may not read, as for a
        chat's."""
        wanted = list(dict.fromkeys(collection_ids))
        for collection_id in wanted:
            await self.documents.get_collection(principal, collection_id)
        return wanted

    async def _check_groups(self, principal: Principal, group_ids: list[str]) -> None:
        """One shares with one's own groups; an administrator with any group there is."""
        if not group_ids:
            return
        allowed = set(principal.groups)
        if principal.is_admin:
            allowed |= {g.id for g in await self.users.list_groups()}
        for group_id in group_ids:
            if group_id not in allowed:
                raise InvalidRequest(
                    f"You may share a preset only with a group you are in, not {group_id}.",
                    param="group_ids",
                )


def chat_from_preset(body: ChatCreate, start: PresetStart) -> tuple[ChatCreate, list[str]]:
    """A new chat's request with the preset's values where the request gave none (a field
    sent, even as null, wins), and notes on what was left out."""
    preset = start.preset
    given = body.model_fields_set
    values = {
        name: value
        for name, value in (
            ("model", preset.model),
            ("system_prompt", preset.system_prompt),
            ("temperature", preset.temperature),
            ("max_tokens", preset.max_tokens),
            ("collection_ids", start.collection_ids),
        )
        if name not in given
    }
    notes = []
    if start.left_out and "collection_ids" not in given:
        ids = ", ".join(str(c) for c in start.left_out)
        notes.append(
            f"Left out {len(start.left_out)} of the preset's collections, which you may not "
            f"read: {ids}."
        )
    return body.model_copy(update=values), notes


def _mine_or_shared(principal: Principal) -> Select[tuple[ChatPreset]]:
    shared = select(PresetShare.preset_id).where(PresetShare.group_id.in_(principal.groups))
    return select(ChatPreset).where(
        or_(ChatPreset.owner_id == principal.user_id, ChatPreset.id.in_(shared))
    )


def _visible(principal: Principal) -> Select[tuple[ChatPreset]]:
    """What the caller may open: theirs and those shared with them; any, for an admin."""
    return select(ChatPreset) if principal.is_admin else _mine_or_shared(principal)


async def _editable(
    session: AsyncSession, principal: Principal, preset_id: uuid.UUID
) -> ChatPreset:
    preset = await session.scalar(
        _visible(principal).where(ChatPreset.id == preset_id).with_for_update(of=ChatPreset)
    )
    if preset is None:
        raise NotFound(f"no preset {preset_id}")
    if preset.owner_id != principal.user_id and not principal.is_admin:
        raise Forbidden(f"Only its owner or an administrator may change preset {preset_id}.")
    return preset


async def _shares(session: AsyncSession, preset_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
    if not preset_ids:
        return {}
    rows = await session.execute(
        select(PresetShare.preset_id, PresetShare.group_id)
        .where(PresetShare.preset_id.in_(preset_ids))
        .order_by(PresetShare.group_id)
    )
    shares: dict[uuid.UUID, list[str]] = {}
    for preset_id, group_id in rows:
        shares.setdefault(preset_id, []).append(group_id)
    return shares


def _public(preset: ChatPreset, group_ids: list[str], principal: Principal) -> PresetPublic:
    owned = preset.owner_id == principal.user_id
    editable = owned or principal.is_admin
    return PresetPublic(
        id=preset.id,
        name=preset.name,
        description=preset.description,
        model=preset.model,
        system_prompt=preset.system_prompt,
        temperature=preset.temperature,
        max_tokens=preset.max_tokens,
        collection_ids=list(preset.collection_ids),
        group_ids=group_ids if editable else [g for g in group_ids if g in principal.groups],
        owned=owned,
        editable=editable,
        created_at=preset.created_at,
        updated_at=preset.updated_at,
    )
