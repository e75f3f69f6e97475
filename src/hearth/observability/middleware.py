"""One pure-ASGI middleware for every request: request id, body-size limit, metrics, access log.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which would buffer streamed responses
and add a task per request on the hot path.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearth.http.errors import error_response
from hearth.http.stamps import ON_END, RECEIVED
from hearth.observability.logging import request_id
from hearth.observability.metrics import Metrics

log = logging.getLogger("hearth.access")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_body: int,
        max_upload: int,
        path_limits: Mapping[str, int] | None = None,
        suffix_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body
        self.max_upload = max_upload
        self.path_limits = dict(path_limits or {})  # a path's own limit (chat imports)
        # The limit of paths ending so (images uploaded to a chat, `/api/chats/{id}/images`).
        self.suffix_limits = tuple((suffix_limits or {}).items())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = _freezing_after_startup(send)
            await self.app(scope, receive, send)
            return
        incoming, length = "", None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"x-request-id":
                incoming = value.decode("latin-1")
        rid = incoming if incoming and _SAFE_ID.match(incoming) else os.urandom(16).hex()
        token = request_id.set(rid)
        started = time.perf_counter()
        # Where the gateway's added time starts, if the protocol did not stamp it.
        state = scope.setdefault("state", {})
        if RECEIVED not in state:
            state[RECEIVED] = started
        status = 500
        # File uploads (POST .../documents) may be larger than API bodies.
        path = scope["path"]
        limit = self.path_limits.get(path) or next(
            (size for suffix, size in self.suffix_limits if path.endswith(suffix)),
            self.max_upload if path.endswith("/documents") else self.max_body,
        )
        self.metrics.in_flight.inc()

        body_too_large = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if body_too_large:
                return  # the app's answer to a cut-off body; the 413 below replaces it
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        seen = 0

        async def limited_receive() -> Message:
            # A body sent without content-length (chunked) is counted as it is read; past
            # the limit the app is told the client left, and the client gets a 413.
            nonlocal seen, body_too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    body_too_large = True
                    return {"type": "http.disconnect"}
            return message

        try:
            declared = int(length) if length is not None and length.isdigit() else None
            if declared is not None and declared > limit:
                await self._too_large(scope, receive, send_wrapper, limit)
            elif declared is not None:
                # The server reads no more than the declared length: nothing to count.
                await self.app(scope, receive, send_wrapper)
            else:
                await self.app(scope, limited_receive, send_wrapper)
            if body_too_large:
                body_too_large = False
                await self._too_large(scope, receive, send_wrapper, limit)
        finally:
            ended = time.perf_counter()  # the app's last send has returned: all written
            on_end = state.get(ON_END)
            if on_end is not None:
                on_end(ended)
            if status == 500 and state.get("hearth_client_gone"):
                status = 499  # the client left before the answer (nginx's code for it)
            elapsed = ended - started
            route = _route_path(scope)
            method = scope["method"]
            self.metrics.in_flight.dec()
            requests, latency = self.metrics.http(method, route, status)
            requests.inc()
            latency.observe(elapsed)
            log.info(
                "%s %s %s",
                method,
                scope["path"],
                status,
                extra={"status": status, "duration_ms": round(elapsed * 1000, 2)},
            )
            request_id.reset(token)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        message = f"Request body exceeds the limit of {limit} bytes."
        await error_response(413, message, code="request_too_large")(scope, receive, send)


def _freezing_after_startup(send: Send) -> Send:
    """`send` that, once start-up completes, moves every object alive then (modules,
    routes, settings, models: what lives as long as the process) out of the garbage
    collector's sight. A full collection walked all of them, about 180,000 objects and over
    100 ms, stalling every request in flight several times a minute under load."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            # The young generations' garbage goes first (a millisecond). Not a full
            # collection: it would stall for as long as the ones avoided, and the server
            # has announced it is ready and is about to accept connections.
            gc.collect(1)
            gc.freeze()
        elif message["type"] == "lifespan.shutdown.complete":
            gc.unfreeze()  # several apps in one process (tests): let the next collect this
        await send(message)

    return wrapped


def _route_path(scope: dict[str, Any]) -> str:
    # The matched route's template keeps label cardinality bounded (no raw ids or 404 paths).
    route = scope.get("route")
    return getattr(route, "path", "unmatched")
