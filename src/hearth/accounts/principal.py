"""The caller of a request, as every service that filters by permission takes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends


@dataclass(frozen=True)
class Principal:
    """A user and the groups they belong to."""

    user_id: str
    groups: tuple[str, ...] = ()

    @property
    def principals(self) -> list[str]:
        """The names grants may be made to: the user's id and `group:<id>` per group."""
        return [self.user_id, *(f"group:{group}" for group in self.groups)]


LOCAL_USER = Principal(user_id="local")


def current_principal() -> Principal:
    """Accounts are not built yet: until then every request acts for one local user. Every
    service already takes the caller, so sessions and API keys plug in here."""
    return LOCAL_USER


CallerDep = Annotated[Principal, Depends(current_principal)]
