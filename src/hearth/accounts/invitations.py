"""Invitations. An account an administrator creates without a password is claimed by
whoever holds its invitation link: a one-time token, stored as its SHA-256 (like API keys:
it is random, so a slow hash adds nothing), valid for INVITE_DAYS. Before, it went to
whoever first signed up with its email, which anyone who knew or guessed the email could
do."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from hearth.accounts.models import User

INVITE_DAYS = 7


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(user: User, *, now: datetime | None = None) -> str:
    """Give `user` a new invitation (any earlier link stops working); returns its token."""
    token = secrets.token_urlsafe(32)
    user.invite_hash = _digest(token)
    user.invite_expires_at = (now or datetime.now(UTC)) + timedelta(days=INVITE_DAYS)
    return token


def redeems(user: User, token: str | None, *, now: datetime | None = None) -> bool:
    """Whether `token` claims `user`'s invitation: the current one, not expired."""
    if not token or user.invite_hash is None or user.invite_expires_at is None:
        return False
    if user.invite_expires_at <= (now or datetime.now(UTC)):
        return False
    return hmac.compare_digest(user.invite_hash, _digest(token))


def spend(user: User) -> None:
    user.invite_hash = None
    user.invite_expires_at = None


def signup_path(token: str) -> str:
    """The link to send: relative to the site's address."""
    return f"/signup?invite={token}"
