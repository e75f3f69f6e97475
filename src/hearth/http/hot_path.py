"""The application, with a short way in for the gateway's hottest route.

A request for POST /v1/chat/completions goes through RequestMiddleware (request id, body
limit, metrics, access log) straight to its endpoint. It skips Starlette's and FastAPI's
own layers (error middleware, telemetry, body limit, exception middleware, exit stack,
router, route), each a few microseconds hot and many more with cold caches, which is what a
request at a modest rate meets (bench/RESULTS.md, "what one more process costs"). Exceptions
still meet the app's own handlers, looked up the way Starlette does (by the exception's
classes, nearest first), so errors keep OpenAI's shape. Every other request takes the usual
path. Middleware added to the app later does not see these requests: give it to
`serve_directly`'s `wrap` as well.

Measured (A/B twice, quiet machine): added p50 latency at 50 requests/s 1.99 → 1.82 and
1.69 → 1.44 ms, first chunk 2.31 → 2.26 and 2.50 → 1.94 ms.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from hearth.http.api_docs import install_api_docs

Endpoint = Callable[[Request], Coroutine[Any, Any, ASGIApp]]


@dataclass(frozen=True)
class HotRoute:
    """A POST route whose endpoint takes the Request and returns an ASGI reply (a raw
    route). It stays mounted on its router as well, for OpenAPI and other methods' 405."""

    path: str  # in full, prefix included: what metrics label the request with
    endpoint: Endpoint


class HearthApp(FastAPI):
    """FastAPI, with hot routes served outside its middleware stack, and API documentation
    pages that work offline (`api_docs`)."""

    _hot: dict[str, HotRoute]
    _hot_stack: ASGIApp | None = None

    def __init__(self, **options: Any) -> None:
        docs_url = options.pop("docs_url", "/docs")
        redoc_url = options.pop("redoc_url", "/redoc")
        super().__init__(**options, docs_url=None, redoc_url=None)
        if docs_url and redoc_url:
            install_api_docs(self, docs_url, redoc_url)

    def serve_directly(self, routes: list[HotRoute], wrap: Callable[[ASGIApp], ASGIApp]) -> None:
        """Serve POSTs to `routes` inside `wrap` (RequestMiddleware) only."""
        self._hot = {route.path: route for route in routes}
        self._hot_stack = wrap(self._serve_hot)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._hot_stack is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self._hot
        ):
            scope["app"] = self
            await self._hot_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    async def _serve_hot(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._hot[scope["path"]]
        scope["route"] = route  # for the metrics' route label, as the router would set it
        request = Request(scope, receive, send)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Callable[..., Any] | None:
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                return handler
        return None
