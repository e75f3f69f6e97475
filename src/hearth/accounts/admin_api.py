"""Administration of accounts: users (approve, role, disable, reset password), groups, and
every user's API keys. Admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, Field

from hearth.accounts.api import KeysDep, UsersDep
from hearth.accounts.auth import AdminDep
from hearth.accounts.keys import KeyPublic
from hearth.accounts.users import (
    GroupPublic,
    Status,
    TeamLimits,
    UserCreate,
    UserCreated,
    UserPublic,
    UserUpdate,
)
from hearth.fields import Offset

router = APIRouter(prefix="/api/admin", tags=["admin"])


class GroupCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


@router.get("/users")
async def list_users(
    users: UsersDep,
    admin: AdminDep,
    status: Status | None = None,
    q: str = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
) -> list[UserPublic]:
    """Users, pending approval first."""
    return await users.list(status=status, query=q, limit=limit, offset=offset)


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, users: UsersDep, admin: AdminDep) -> UserCreated:
    """Create an account; without a password it is an invitation, whose link (in the answer,
    once) the person signs up through: knowing the email is not enough."""
    return await users.create(body, status="active" if body.password else "pending")


@router.post("/users/{user_id}/invitation", status_code=status.HTTP_201_CREATED)
async def invite_again(user_id: str, users: UsersDep, admin: AdminDep) -> UserCreated:
    """A new invitation link for an account not claimed yet; the earlier link stops working."""
    return await users.invite_again(user_id)


@router.patch("/users/{user_id}")
async def update_user(
    user_id: str, body: UserUpdate, request: Request, users: UsersDep, admin: AdminDep
) -> UserPublic:
    """Approve (status active), disable, change role or name, reset the password. Disabling
    or resetting signs the user out everywhere."""
    user = await users.update(admin, user_id, body)
    if body.status == "disabled" or body.password:
        await request.app.state.sessions.revoke_all(user_id)
    return user


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: str, users: UsersDep, admin: AdminDep) -> Response:
    await users.delete(admin, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/groups")
async def list_groups(users: UsersDep, admin: AdminDep) -> list[GroupPublic]:
    return await users.list_groups()


@router.post("/groups", status_code=status.HTTP_201_CREATED)
async def create_group(body: GroupCreate, users: UsersDep, admin: AdminDep) -> GroupPublic:
    return await users.create_group(body.name)


@router.delete("/groups/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_group(group_id: str, users: UsersDep, admin: AdminDep) -> Response:
    await users.delete_group(group_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put("/groups/{group_id}/limits")
async def set_team_limits(
    group_id: str, body: TeamLimits, users: UsersDep, admin: AdminDep
) -> GroupPublic:
    """A group's limits as a team, shared by every API key made for it (`team_id`)."""
    return await users.set_team_limits(group_id, body)


@router.put("/groups/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def add_member(group_id: str, user_id: str, users: UsersDep, admin: AdminDep) -> Response:
    await users.set_member(group_id, user_id, member=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.delete("/groups/{group_id}/members/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_member(group_id: str, user_id: str, users: UsersDep, admin: AdminDep) -> Response:
    await users.set_member(group_id, user_id, member=False)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/keys")
async def list_all_keys(keys: KeysDep, admin: AdminDep) -> list[KeyPublic]:
    """Every user's keys."""
    return await keys.list(admin, everyone=True)


@router.delete("/keys/{key}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_any_key(key: str, keys: KeysDep, admin: AdminDep) -> Response:
    await keys.revoke(admin, key, everyone=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
