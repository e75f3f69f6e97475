"""The caller of a request, as every service that filters by permission takes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    """A user (or an API key's owner) and the groups they belong to."""

    user_id: str
    groups: tuple[str, ...] = ()
    is_admin: bool = False

    @property
    def principals(self) -> list[str]:
        """The names grants may be made to: the user's id and `group:<id>` per group."""
        return [self.user_id, *(f"group:{group}" for group in self.groups)]


# Who acts at the command line (`hearth ingest`, `hearth keys ...`) and, on loopback without
# keys, on /v1: the machine's operator, owner of what they create there.
LOCAL_USER = Principal(user_id="local")
