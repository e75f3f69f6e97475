"""What an application says about a request beyond what it asks of the model, and how
Hearth honours it:

- `user`, and `safety_identifier` which replaces it in OpenAI's API: whom the application
  is asking for (one of its own users). Kept on the request's usage row (`end_user`), so the
  admin's usage report shows an application's users, as LiteLLM's end-user spend does.
- `prompt_cache_key`: requests that share a long prefix say so. They are routed to the same
  deployment, whose prompt cache then holds the prefix: the balancer's session affinity,
  keyed by it where no session header is sent."""

from __future__ import annotations

from typing import Any

from hearth.errors import InvalidRequest

MAX_LENGTH = 200  # usage_record.end_user; OpenAI's own limit is 64


def end_user(request: Any) -> str | None:
    """The request's `safety_identifier`, else its `user`; a 400 naming a bad one."""
    extra = request.model_extra or {}
    name, value = "safety_identifier", extra.get("safety_identifier")
    if value is None:
        name, value = "user", getattr(request, "user", None)
    return _checked(name, value)


def cache_route(request: Any) -> str | None:
    """The request's `prompt_cache_key`, for routing."""
    extra = request.model_extra
    return _checked("prompt_cache_key", extra.get("prompt_cache_key")) if extra else None


def _checked(name: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{name}' must be a string", param=name)
    if len(value) > MAX_LENGTH:
        raise InvalidRequest(f"'{name}' has at most {MAX_LENGTH} characters", param=name)
    return value
