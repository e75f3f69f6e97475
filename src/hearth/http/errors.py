"""One error shape for every JSON surface: OpenAI's `{"error": {message, type, param, code}}`,
and an error page for browsers.

Handlers registered here turn domain exceptions, validation errors and HTTP errors into it;
routes rarely catch anything. A browser asking for a page (not /v1 or /api) gets the same
message as HTML, from the renderer the web package hands in.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hearth.engines.protocol import ErrorInfo, ErrorResponse
from hearth.errors import HearthError
from hearth.http.outages import DEPENDENCY_ERRORS, Outages

log = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}


def error_body(exc: HearthError) -> bytes:
    info = ErrorInfo(message=exc.message, type=exc.type, param=exc.param, code=exc.code)
    return ErrorResponse(error=info).model_dump_json().encode()


HtmlRenderer = Callable[[Request, int, str], Response]
_JSON_PREFIXES = ("/v1", "/api")


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith(_JSON_PREFIXES):
        return False
    return "text/html" in request.headers.get("accept", "")


def error_response(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    info = ErrorInfo(
        message=message, type=type or _TYPES.get(status, "server_error"), param=param, code=code
    )
    return Response(
        ErrorResponse(error=info).model_dump_json(),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def _hearth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HearthError)
    if exc.status >= 500:
        log.warning("%s: %s", type(exc).__name__, exc.message)
    headers = None
    if exc.retry_after is not None:
        # The openai SDK reads retry-after-ms first; HTTP clients read Retry-After (seconds).
        headers = {
            "retry-after": str(max(1, math.ceil(exc.retry_after))),
            "retry-after-ms": str(math.ceil(exc.retry_after * 1000)),
        }
    html = getattr(request.app.state, "error_page", None)
    if html is not None and _wants_html(request):
        return html(request, exc.status, exc.message)
    return error_response(
        exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code, headers=headers
    )


# pydantic names the member of a union a value failed in the error's location (`content`
# then `str`); the field is what a client needs.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|bytes)$|\[")


def _tag(part: object) -> bool:
    return isinstance(part, str) and bool(_UNION_TAG.search(part))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ()) if part != "body" and not _tag(part)]
    if first.get("type") == "json_invalid":
        message = "We could not parse the JSON body of your request."
    else:
        where = ".".join(loc)
        message = f"{where}: {first.get('msg', 'invalid value')}" if where else first.get("msg", "")
    return error_response(400, message, param=".".join(loc) or None, code=first.get("type"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    html = getattr(request.app.state, "error_page", None)
    if html is not None and _wants_html(request):
        return html(request, exc.status_code, str(exc.detail))
    return error_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error")
    return error_response(500, "The server had an error while processing your request.")


def _dependency_error(outages: Outages) -> Callable[[Request, Exception], Awaitable[Response]]:
    """What PostgreSQL's and Redis's drivers raise: 503 with Retry-After when it is an
    outage; otherwise a 500 answered here, so the connection stays open (errors that reach
    the catch-all `Exception` handler are re-raised by Starlette, which closes it)."""

    async def handle(request: Request, exc: Exception) -> Response:
        outage = outages.of(exc)
        if outage is None:
            return await _unexpected(request, exc)
        return await _hearth_error(request, outage)

    return handle


def install_error_handlers(app: FastAPI) -> None:
    app.state.outages = outages = Outages()
    app.add_exception_handler(HearthError, _hearth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for dependency_error in DEPENDENCY_ERRORS:
        app.add_exception_handler(dependency_error, _dependency_error(outages))
    app.add_exception_handler(Exception, _unexpected)
