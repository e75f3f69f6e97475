"""Password hashing with Argon2id (argon2-cffi's defaults follow RFC 9106's second
recommendation), run off the event loop: one hash costs tens of milliseconds of CPU."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hearth.errors import InvalidRequest

MIN_LENGTH = 8
MAX_LENGTH = 1024  # Argon2 takes any length; a megabyte "password" is a denial of service

_hasher = PasswordHasher()
# Verified against when the email is unknown, so both cases take the same time and the
# response time does not tell which emails have accounts.
_DUMMY = _hasher.hash("not a real password")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidRequest(f"Passwords need at least {MIN_LENGTH} characters.", param="password")
    if len(password) > MAX_LENGTH:
        raise InvalidRequest(f"Passwords have at most {MAX_LENGTH} characters.", param="password")


async def hash_password(password: str) -> str:
    check_strength(password)
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; `stored=None` still spends a verification."""
    if len(password) > MAX_LENGTH:
        return False

    def verify() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
