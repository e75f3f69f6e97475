"""Users and groups: sign-up (the first account becomes the admin), sign-in, approval,
roles, passwords, group membership."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Select, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from hearth.accounts import invitations
from hearth.accounts.models import ApiKey, Group, GroupMember, User
from hearth.accounts.oidc import Identity
from hearth.accounts.passwords import hash_password, needs_rehash, verify_password
from hearth.accounts.principal import Principal
from hearth.admin.service import SiteSettings
from hearth.db.session import Database
from hearth.errors import Forbidden, HearthError, InvalidRequest, NotFound
from hearth.fields import Count, Patch

log = logging.getLogger(__name__)

Role = Literal["admin", "user"]
Status = Literal["pending", "active", "disabled"]
# Serialises sign-ups while no user exists, so exactly one first account becomes admin.
_FIRST_USER_LOCK = 0x6865617274680001


class SignInFailed(HearthError):
    status = 401
    type = "invalid_request_error"
    code = "sign_in_failed"


def _email(value: str) -> str:
    value = value.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or " " in value or len(value) > 320:
        raise ValueError("not an email address")
    return value


class UserCreate(BaseModel):
    email: str
    name: str = Field(default="", max_length=200)
    password: str | None = Field(
        default=None,
        description="Empty: an invitation; the person sets a password when signing up.",
    )
    role: Role = "user"

    _check_email = field_validator("email")(lambda cls, v: _email(v))


class SignUp(BaseModel):
    email: str
    name: str = Field(default="", max_length=200)
    password: str
    invite: str | None = Field(
        default=None,
        max_length=100,
        description="The token of an invitation link (`/signup?invite=...`): it claims the "
        "account an administrator created for this email.",
    )

    _check_email = field_validator("email")(lambda cls, v: _email(v))


SignUpNext = Literal["sign_in", "wait_for_approval"]


class SignUpReceived(BaseModel):
    """What a sign-up is answered: the same for a new email and for one that has an
    account (else sign-up would tell anyone who has an account here)."""

    email: str
    next: SignUpNext = Field(description="What the person does now.")
    message: str


class Person(BaseModel):
    """Someone a user may name (to share with): id, email and display name."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    name: str
    role: str
    status: str
    created_at: datetime
    last_login_at: datetime | None
    invited: bool = Field(
        default=False, description="An invitation not claimed yet (no password, no sign-on)."
    )


class UserCreated(UserPublic):
    invitation_link: str | None = Field(
        default=None,
        description="For an account made without a password: the sign-up link to send the "
        "person, relative to the site's address. Shown once; valid for "
        f"{invitations.INVITE_DAYS} days.",
    )


class UserUpdate(Patch):
    """What an administrator changes about a user."""

    name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    status: Status | None = None
    password: str | None = Field(default=None, max_length=1024, description="Reset the password.")


class TeamLimits(BaseModel):
    """A group's limits as a team: what all API keys made for it share (empty: none)."""

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    max_concurrent: Count | None = None
    budget: float | None = Field(default=None, ge=0)
    budget_period: Literal["day", "week", "month"] | None = None

    @model_validator(mode="after")
    def _budget(self) -> TeamLimits:
        if (self.budget is None) != (self.budget_period is None):
            raise ValueError("budget and budget_period go together")
        return self


class GroupPublic(TeamLimits):
    id: str
    name: str
    members: list[str] = Field(description="User ids.")


@dataclass(frozen=True)
class SignedUp:
    """A sign-up's outcome. `account` is the account it created or completed (an
    invitation), None when the email was taken or sign-up is closed to it: for the routes to
    decide whether to start a session, never to show."""

    account: UserPublic | None
    received: SignUpReceived


def _created(user: User, token: str | None) -> UserCreated:
    link = invitations.signup_path(token) if token else None
    return UserCreated.model_validate(user).model_copy(update={"invitation_link": link})


def _received(email: str, site: SiteSettings, *, first: bool) -> SignUpReceived:
    if first:
        return SignUpReceived(
            email=email, next="sign_in", message="The administrator account is ready: sign in."
        )
    if site.signup_mode != "open":
        return SignUpReceived(
            email=email,
            next="sign_in",
            message="If this came with a valid invitation link for this email, its account "
            "now has this password: sign in. Otherwise ask an administrator for an "
            "invitation link.",
        )
    if site.approve_new_users:
        return SignUpReceived(
            email=email,
            next="wait_for_approval",
            message="Thanks for signing up. New accounts wait for an administrator's "
            "approval: you can sign in once yours is approved. If this email already has an "
            "account, sign in with it.",
        )
    return SignUpReceived(
        email=email,
        next="sign_in",
        message="Thanks for signing up: sign in with this email and password. If this email "
        "already had an account, sign in with that account's password.",
    )


# What a feature erases of a deleted account (its chats, its collections): registered by
# the features through `Users.on_delete`, so accounts never touch their tables.
Eraser = Callable[[str], Awaitable[None]]


class Users:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._erasers: list[Eraser] = []

    def on_delete(self, erase: Eraser) -> None:
        """Call `erase(user_id)` when an account is deleted, before the account goes."""
        self._erasers.append(erase)

    async def sign_up(self, body: SignUp, site: SiteSettings) -> SignedUp:
        """Create an account from the sign-up form. The first account ever becomes an active
        admin; after that the site's sign-up mode and approval setting decide.

        Whether the email already had an account shows only in `account`, which the routes
        keep to themselves: what the person is told (`received`) depends on the site alone,
        and a taken email costs the same password hash as a new one."""
        password_hash = await hash_password(body.password)
        async with self.database.session() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FIRST_USER_LOCK})
            first = await session.scalar(select(func.count()).select_from(User)) == 0
            existing = await session.scalar(
                select(User).where(func.lower(User.email) == body.email.lower())
            )
            user: User | None = None
            if existing is not None:
                if existing.invited and invitations.redeems(existing, body.invite):
                    # The invitation's link: the person sets a password, and the account
                    # (an administrator's choice) is active unless they disabled it since.
                    existing.password_hash = password_hash
                    existing.name = body.name or existing.name
                    if existing.status == "pending":
                        existing.status = "active"
                    invitations.spend(existing)
                    user = existing
                else:
                    # Its owner is told by the usual path (they can sign in); the log says
                    # which account, never the email.
                    log.info("a sign-up named the email of account %s", existing.id)
            elif first:
                user = _new_user(body.email, body.name, password_hash, "admin", "active")
                session.add(user)
            elif site.signup_mode == "open":
                status = "pending" if site.approve_new_users else "active"
                user = _new_user(body.email, body.name, password_hash, "user", status)
                session.add(user)
            await session.commit()
            account = UserPublic.model_validate(user) if user is not None else None
        return SignedUp(account, _received(body.email, site, first=first))

    async def create(self, body: UserCreate, *, status: Status = "active") -> UserCreated:
        """Create an account as an administrator (or `hearth users create`). Without a
        password it is an invitation: the answer carries its link, once."""
        password_hash = await hash_password(body.password) if body.password else None
        user = _new_user(body.email, body.name, password_hash, body.role, status)
        token = invitations.issue(user) if password_hash is None else None
        async with self.database.session() as session:
            session.add(user)
            try:
                await session.commit()
            except IntegrityError:
                raise InvalidRequest(
                    f"An account with the email {body.email} exists.", param="email"
                ) from None
            return _created(user, token)

    async def invite_again(self, user_id: str) -> UserCreated:
        """A new link for an unclaimed invitation; the earlier one stops working."""
        async with self.database.session() as session:
            user = await session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFound(f"no user {user_id}")
            if not user.invited:
                raise InvalidRequest(
                    f"{user.email} has claimed the account already: reset its password instead.",
                    param="user_id",
                )
            token = invitations.issue(user)
            await session.commit()
            return _created(user, token)

    async def sign_in(self, email: str, password: str) -> UserPublic:
        """Check a password. Unknown emails and wrong passwords fail alike, in the same time."""
        async with self.database.session() as session:
            user = await session.scalar(
                select(User).where(func.lower(User.email) == email.strip().lower())
            )
            stored = user.password_hash if user is not None else None
            if not await verify_password(stored, password) or user is None:
                raise SignInFailed("Wrong email or password.")
            if user.status == "pending":
                raise Forbidden("Your account is waiting for an administrator's approval.")
            if user.status == "disabled":
                raise Forbidden("Your account is disabled.")
            user.last_login_at = datetime.now(UTC)
            if needs_rehash(stored or ""):
                user.password_hash = await hash_password(password)
            await session.commit()
            return UserPublic.model_validate(user)

    async def sign_on(self, identity: Identity, site: SiteSettings) -> UserPublic:
        """Sign in someone the identity provider vouches for: the account linked to their
        subject; else the account with their (verified) email, which gets linked; else a
        new account, as the sign-up mode allows (the first account ever is the admin)."""
        async with self.database.session() as session:
            await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _FIRST_USER_LOCK})
            user = await session.scalar(select(User).where(User.oidc_subject == identity.subject))
            if user is None and identity.email and identity.email_verified:
                user = await session.scalar(
                    select(User).where(func.lower(User.email) == identity.email.lower())
                )
                if user is not None and user.oidc_subject not in (None, identity.subject):
                    raise Forbidden("This email is linked to another sign-on account.")
                if user is not None and user.invited:
                    # The provider vouches for the invited email: the invitation is claimed.
                    invitations.spend(user)
                    if user.status == "pending":
                        user.status = "active"
            if user is None:
                if not identity.email or not identity.email_verified:
                    raise Forbidden("The identity provider did not confirm an email address.")
                first = await session.scalar(select(func.count()).select_from(User)) == 0
                if not first and site.signup_mode != "open":
                    raise Forbidden("Sign-up is by invitation only; ask an administrator.")
                status = "active" if first or not site.approve_new_users else "pending"
                user = _new_user(
                    identity.email, identity.name, None, "admin" if first else "user", status
                )
                session.add(user)
            user.oidc_subject = identity.subject
            if user.status == "active":
                user.last_login_at = datetime.now(UTC)
            await session.commit()
            if user.status == "pending":
                raise Forbidden("Your account is waiting for an administrator's approval.")
            if user.status == "disabled":
                raise Forbidden("Your account is disabled.")
            return UserPublic.model_validate(user)

    async def get(self, user_id: str) -> UserPublic:
        async with self.database.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return UserPublic.model_validate(user)

    async def principal(self, who: str | None = None) -> Principal | None:
        """Whom a command acts as: the active account `who` names (an email or an id), or,
        with no `who`, the first admin; None when there is no account yet. NotFound when
        `who` names no active account."""
        groups = (
            select(func.coalesce(func.array_agg(GroupMember.group_id), []))
            .where(GroupMember.user_id == User.id)
            .scalar_subquery()
        )
        statement = select(User.id, User.role, User.status, groups)
        if who is None:
            statement = statement.where(User.role == "admin", User.status == "active").order_by(
                User.created_at, User.id
            )
        elif "@" in who:
            statement = statement.where(func.lower(User.email) == who.strip().lower())
        else:
            statement = statement.where(User.id == who)
        async with self.database.session() as session:
            row = (await session.execute(statement.limit(1))).first()
        if row is None or row.status != "active":
            if who is None:
                return None
            state = "no account" if row is None else f"the account is {row.status}"
            raise NotFound(f"cannot act as {who}: {state}")
        user_id, role, _, group_ids = row
        return Principal(user_id, tuple(sorted(group_ids)), is_admin=role == "admin")

    async def find(self, email: str) -> UserPublic:
        async with self.database.session() as session:
            user = await session.scalar(
                select(User).where(func.lower(User.email) == email.strip().lower())
            )
        if user is None:
            raise NotFound(f"no user with the email {email}")
        return UserPublic.model_validate(user)

    async def people(
        self, principal: Principal, *, query: str = "", limit: int = 100
    ) -> list[Person]:
        """The people `principal` may name, by email: everyone for an administrator, else
        those who share a group with them. Sharing resolves names only among these, so no
        one learns through it whether an email has an account."""
        statement = _visible_to(principal).order_by(User.email).limit(limit)
        if query:
            pattern = f"%{_escape_like(query)}%"
            statement = statement.where(or_(User.email.ilike(pattern), User.name.ilike(pattern)))
        async with self.database.read() as session:
            return [Person.model_validate(user) for user in await session.scalars(statement)]

    async def find_person(self, principal: Principal, email: str) -> Person:
        """The person with this email among those `principal` may name: NotFound alike for
        an email with no account and for one the caller may not see."""
        statement = _visible_to(principal).where(func.lower(User.email) == email.strip().lower())
        async with self.database.read() as session:
            user = await session.scalar(statement)
        if user is None:
            raise NotFound(
                f"No one you can share with has the email {email.strip()}: share through a "
                "group you both belong to, or ask an administrator."
            )
        return Person.model_validate(user)

    async def emails(self, user_ids: list[str]) -> dict[str, str]:
        """Email by user id, for the ids that are accounts (usage rows name owners by id)."""
        if not user_ids:
            return {}
        async with self.database.session() as session:
            rows = await session.execute(select(User.id, User.email).where(User.id.in_(user_ids)))
            return {user_id: email for user_id, email in rows}

    async def list(
        self, *, status: Status | None = None, query: str = "", limit: int = 100, offset: int = 0
    ) -> list[UserPublic]:
        """Users for the admin pages, pending ones first, then by email."""
        statement = select(User).order_by((User.status == "pending").desc(), User.email)
        if status:
            statement = statement.where(User.status == status)
        if query:
            pattern = f"%{_escape_like(query)}%"
            statement = statement.where(or_(User.email.ilike(pattern), User.name.ilike(pattern)))
        async with self.database.session() as session:
            rows = await session.scalars(statement.limit(limit).offset(offset))
            return [UserPublic.model_validate(u) for u in rows]

    async def update(self, actor: Principal, user_id: str, body: UserUpdate) -> UserPublic:
        """Approve, disable, change role, rename or reset the password of a user. The last
        active admin cannot demote or disable themselves (someone must be able to log in)."""
        values = body.model_dump(exclude_unset=True, exclude={"password"})
        if body.password:
            values["password_hash"] = await hash_password(body.password)
        async with self.database.session() as session:
            user = await session.get(User, user_id, with_for_update=True)
            if user is None:
                raise NotFound(f"no user {user_id}")
            if body.password:
                invitations.spend(user)  # its password is set: the link must not reset it
            losing_admin = user.role == "admin" and (
                values.get("role", "admin") != "admin" or values.get("status", "active") != "active"
            )
            if losing_admin and await _active_admins(session) <= 1:
                raise InvalidRequest("This is the last active admin; make another admin first.")
            for name, value in values.items():
                setattr(user, name, value)
            await session.commit()
            return UserPublic.model_validate(user)

    async def change_password(self, user_id: str, current: str, new: str) -> None:
        async with self.database.session() as session:
            user = await session.get(User, user_id)
            if user is None or not await verify_password(user.password_hash, current):
                raise InvalidRequest("The current password is wrong.", param="current_password")
            user.password_hash = await hash_password(new)
            await session.commit()

    async def delete(self, actor: Principal, user_id: str) -> None:
        """Delete an account and what it owns: the features erase their part first (chats,
        collections with their documents, grants to it), then one transaction revokes its
        API keys and deletes the account with its sessions and memberships. Interrupted,
        it leaves the account in place with less content, so deleting again completes it."""
        if actor.user_id == user_id:
            raise InvalidRequest("You cannot delete your own account.")
        async with self.database.read() as session:
            if await session.get(User, user_id) is None:
                raise NotFound(f"no user {user_id}")
        for erase in self._erasers:
            await erase(user_id)
        async with self.database.session() as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.owner_id == user_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
            result = await session.execute(delete(User).where(User.id == user_id))
            await session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"no user {user_id}")

    async def count(self) -> int:
        async with self.database.session() as session:
            return await session.scalar(select(func.count()).select_from(User)) or 0

    # -- groups -----------------------------------------------------------------------------

    async def create_group(self, name: str) -> GroupPublic:
        group = Group(id=str(uuid.uuid4()), name=name.strip())
        if not group.name:
            raise InvalidRequest("A group needs a name.", param="name")
        async with self.database.session() as session:
            session.add(group)
            try:
                await session.commit()
            except IntegrityError:
                raise InvalidRequest(f"A group named {name} exists.", param="name") from None
        return GroupPublic(id=group.id, name=group.name, members=[])

    async def list_groups(self) -> list[GroupPublic]:
        members = func.coalesce(
            func.array_agg(GroupMember.user_id).filter(GroupMember.user_id.is_not(None)), []
        )
        statement = (
            select(Group, members)
            .outerjoin(GroupMember, GroupMember.group_id == Group.id)
            .group_by(Group.id)
            .order_by(Group.name)
        )
        async with self.database.session() as session:
            rows = await session.execute(statement)
            return [_group(group, list(m)) for group, m in rows]

    async def set_team_limits(self, group_id: str, limits: TeamLimits) -> GroupPublic:
        """Set a group's team limits (all of them: an empty one means none). Keys made for
        the team see the change within a second."""
        async with self.database.session() as session:
            group = await session.get(Group, group_id)
            if group is None:
                raise NotFound(f"no group {group_id}")
            for name, value in limits.model_dump().items():
                setattr(group, name, value)
            await session.commit()
            members = await session.scalars(
                select(GroupMember.user_id).where(GroupMember.group_id == group_id)
            )
            return _group(group, list(members))

    async def set_member(self, group_id: str, user_id: str, *, member: bool) -> None:
        async with self.database.session() as session:
            if member:
                if await session.get(Group, group_id) is None:
                    raise NotFound(f"no group {group_id}")
                if await session.get(User, user_id) is None:
                    raise NotFound(f"no user {user_id}")
                await session.merge(GroupMember(group_id=group_id, user_id=user_id))
            else:
                await session.execute(
                    delete(GroupMember).where(
                        GroupMember.group_id == group_id, GroupMember.user_id == user_id
                    )
                )
            await session.commit()

    async def delete_group(self, group_id: str) -> None:
        async with self.database.session() as session:
            result = await session.execute(delete(Group).where(Group.id == group_id))
            await session.commit()
        if result.rowcount == 0:  # type: ignore[attr-defined]
            raise NotFound(f"no group {group_id}")


def _group(group: Group, members: list[str]) -> GroupPublic:
    return GroupPublic(
        id=group.id,
        name=group.name,
        members=members,
        requests_per_minute=group.requests_per_minute,
        tokens_per_minute=group.tokens_per_minute,
        max_concurrent=group.max_concurrent,
        budget=group.budget,
        budget_period=group.budget_period,  # type: ignore[arg-type]
    )


def _visible_to(principal: Principal) -> Select[tuple[User]]:
    """Accounts other than the caller's that the caller may name: all of them for an
    administrator, else the members of the caller's groups."""
    statement = select(User).where(User.id != principal.user_id)
    if principal.is_admin:
        return statement
    mine, theirs = aliased(GroupMember), aliased(GroupMember)
    shares_a_group = (
        select(1)
        .select_from(mine)
        .join(theirs, theirs.group_id == mine.group_id)
        .where(mine.user_id == principal.user_id, theirs.user_id == User.id)
        .exists()
    )
    return statement.where(shares_a_group)


def _new_user(email: str, name: str, password_hash: str | None, role: str, status: str) -> User:
    return User(
        id=str(uuid.uuid4()),
        email=email,
        name=name or email.partition("@")[0],
        password_hash=password_hash,
        role=role,
        status=status,
    )


async def _active_admins(session) -> int:  # type: ignore[no-untyped-def]
    statement = select(func.count()).where(User.role == "admin", User.status == "active")
    return await session.scalar(statement) or 0


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
