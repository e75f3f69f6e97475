"""Text PostgreSQL cannot store never gets past the door: NUL characters and unpaired
UTF-16 surrogates, refused in one place for every route with a 400 in its surface's shape.

Both are valid in a JSON string (`\\u0000`, `\\ud800`) and in a URL (`%00`), Python keeps
them in a `str`, and PostgreSQL refuses them (`text` cannot hold NUL, UTF-8 cannot encode a
lone surrogate, `jsonb` refuses `\\u0000`): so any stored text a user sends, in a body, a
query string or a path, would fail as a 500 deep inside a statement. Looking at the bytes
before the app parses them covers every route and every model at once; the common case (a
body with no `\\u` escape at all) costs one substring search.

Bodies are checked when JSON or a URL-encoded form. Multipart uploads are not: a file's
bytes are the user's data, and its name and type are checked where the upload is read.
"""

from __future__ import annotations

import re

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearth.http.errors import error_response
from hearth.http.replies import JsonReply

# An escaped backslash (consumed in pairs, so what follows is known to start an escape),
# NUL, a surrogate pair (fine), or a surrogate on its own.
_ESCAPES = re.compile(
    rb"\\\\"
    rb"|\\u0000"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
)
_NUL = "The request contains a NUL character (\\u0000), which text here cannot hold."
_SURROGATE = (
    "The request contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not a "
    "character; send text as valid Unicode."
)


def json_text_problem(body: bytes) -> str | None:
    """Why the JSON text `body` holds a string that cannot be stored, or None."""
    if b"\\u" not in body:
        return None
    for match in _ESCAPES.finditer(body):
        escape = match.group()
        if escape == b"\\u0000":
            return _NUL
        if len(escape) == 6:  # a lone surrogate (a pair is 12 bytes, a backslash 2)
            return _SURROGATE
    return None


def _scanned(content_type: str) -> str | None:
    """Which check a body with this Content-Type gets: "json", "form" or None."""
    media = content_type.partition(";")[0].strip().lower()
    if not media or media == "application/json" or media.endswith("+json"):
        return "json"  # FastAPI reads a body without a type as JSON
    if media == "application/x-www-form-urlencoded":
        return "form"
    return None


class TextGuard:
    """ASGI middleware: a 400 for NUL or a lone surrogate in the path or query string
    (answered here, in the surface's shape), and for one in a JSON or form body (raised
    from `receive` as an HTTPException, which every surface's handlers shape)."""

    def __init__(self, app: ASGIApp, *, ollama_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.ollama_paths = ollama_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"%00" in scope["query_string"]:
            await self._refuse(scope, _NUL)(scope, receive, send)
            return
        kind = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                kind = _scanned(value.decode("latin-1"))
                break
        else:
            kind = "json" if scope["method"] in ("POST", "PUT", "PATCH") else None
        if kind is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, _checking(receive, kind), send)

    def _refuse(self, scope: Scope, message: str) -> ASGIApp:
        if scope["path"] in self.ollama_paths:
            return JsonReply(orjson.dumps({"error": message}), [], status=400)
        return error_response(400, message, code="invalid_text")


def _checking(receive: Receive, kind: str) -> Receive:
    """`receive`, raising an HTTPException(400) at the body's last part if the body holds
    text that cannot be stored. Parts are kept (not copied) until then."""
    parts: list[bytes] = []

    async def checked() -> Message:
        message = await receive()
        if message["type"] != "http.request":
            return message
        part = message.get("body", b"")
        more = message.get("more_body", False)
        if not parts and not more:
            body = part  # the usual case: the whole body in one message
        else:
            parts.append(part)
            if more:
                return message
            body = b"".join(parts)
            parts.clear()
        problem = json_text_problem(body) if kind == "json" else _form_problem(body)
        if problem is not None:
            raise HTTPException(400, problem)
        return message

    return checked


def _form_problem(body: bytes) -> str | None:
    return _NUL if b"%00" in body else None
