"""What the HTTP engine adapters share: the client, error mapping and reply decoding.

`OpenAIEngine` and `OllamaEngine` speak different protocols through the same machinery.
Each keeps only its payloads, its stream format and how its server spells an error body;
everything here turns what the upstream does wrong into the exceptions of `hearth.errors`.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from hearth.config import ModelConfig
from hearth.engines._wire import (
    ConnectTimeout,
    Prepared,
    ProtocolError,
    ReadTimeout,
    Response,
    Unreachable,
    WireClient,
)
from hearth.engines.base import Engine
from hearth.errors import (
    ContextLengthExceeded,
    EngineTimeout,
    EngineUnavailable,
    HearthError,
    InvalidRequest,
    ModelNotFound,
    UpstreamError,
)

_JSON_HEADERS = Prepared({"Content-Type": "application/json", "Accept": "application/json"})


@lru_cache(maxsize=8)
def _stream_headers(accept: str) -> Prepared:
    # `identity`: a compressed stream only decodes in compressor-sized blocks, which would
    # hold tokens back; a token stream gains little from compression anyway.
    return Prepared(
        {"Content-Type": "application/json", "Accept": accept, "Accept-Encoding": "identity"}
    )


# Statuses that mean "this engine cannot take the request now"; the balancer may retry
# elsewhere. 429 belongs here too: the client did nothing wrong. 502/504 come from a proxy
# in front of the engine that could not reach it.
_UNAVAILABLE = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class HttpReply:
    """A whole upstream reply: what error mapping and decoding need of it."""

    status_code: int
    reason_phrase: str
    content: bytes
    path: str

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class HttpStream:
    """A successful streamed reply, read line by line as the bytes arrive."""

    def __init__(self, response: Response) -> None:
        self._response = response

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Lines without their ending, however long (a large tool call, say)."""
        batches = self.aiter_line_batches()
        try:
            async for lines in batches:
                for line in lines:
                    yield line
        finally:
            await batches.aclose()

    async def aiter_line_batches(self) -> AsyncIterator[list[str]]:
        """The complete lines that have arrived, as soon as they arrive: a list per wait
        for the network (an event alone when the engine sends them apart; several when
        they came together, to be passed on together)."""
        pending = b""
        chunks = self._response.chunks()
        try:
            async for data in chunks:  # all that has arrived, each time
                if pending:
                    data = pending + data
                    pending = b""
                if data.endswith(b"\n"):
                    # The usual case, whole lines only: nothing is kept back.
                    lines = data[:-1].split(b"\n")
                elif b"\n" in data:
                    *lines, pending = data.split(b"\n")
                else:
                    pending = data
                    continue
                yield [line.removesuffix(b"\r").decode(errors="replace") for line in lines]
            if pending:
                yield [pending.removesuffix(b"\r").decode(errors="replace")]
        finally:
            await chunks.aclose()


class ErrorInfo(NamedTuple):
    """An upstream error body, as read by the adapter that knows its API's shape."""

    message: str
    code: str = ""
    param: str | None = None
    structured: bool = False  # the body had the API's error shape, not e.g. an HTML page


class HttpEngineConfig(Protocol):
    """The settings `HttpEngine` reads; every HTTP engine's config has them."""

    @property
    def name(self) -> str: ...
    @property
    def base_url(self) -> str: ...
    @property
    def models(self) -> Sequence[ModelConfig]: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def read_timeout(self) -> float: ...


_C = TypeVar("_C", bound=HttpEngineConfig)
_M = TypeVar("_M", bound=BaseModel)


class HttpEngine(Engine, Generic[_C]):
    """An engine behind an HTTP API: the client's lifecycle, discovery and error mapping.

    Subclasses implement `_fetch_models` and `_error_info`, and may set the class
    attributes below where their API differs.
    """

    # Statuses the engine sends when its queue is full, reported as "busy" rather than
    # as a bare status; all of them must be in `_UNAVAILABLE`.
    _busy_statuses: frozenset[int] = frozenset()
    # What a 401/403 means for this kind of engine (never the client's fault).
    _auth_refused = "the engine rejected Hearth's credentials"
    # Substrings of a 4xx error's text (lower case) that mean the prompt is too long.
    _context_hints: tuple[str, ...] = ()

    def __init__(self, config: _C) -> None:
        super().__init__(config.name)
        self.config = config
        self._discover = not config.models
        self._models: list[ModelConfig] = list(config.models)
        self._client: WireClient | None = None
        self._base = config.base_url.rstrip("/") + "/"

    def models(self) -> list[ModelConfig]:
        return list(self._models)

    async def start(self) -> None:
        # Our own client (_wire.py) rather than a library. httpx cost about 1.5 ms of CPU
        # per request on the gateway's hot path (its pool polls every idle connection's
        # socket on each request; see bench/RESULTS.md, "Gateway"); aiohttp, which
        # replaced it, about 0.17 ms. aiohttp in turn cost ~0.11 ms more CPU per request
        # than a minimal asyncio Protocol + httptools client and added ~0.4 ms of latency
        # at 50 req/s, where the gateway's whole budget is 1 ms at p50. No cap on
        # connections (streams hold one for a whole generation, and a cap would queue
        # requests invisibly): concurrency is the gateway's limiter's job.
        self._client = WireClient(
            headers=self._headers(),
            connect_timeout=self.config.connect_timeout,
            # Between two reads: a stream may last long, but never stall this long.
            read_timeout=self.config.read_timeout,
            unix_socket=self._unix_socket(),
        )
        if self._discover:
            try:
                await self.list_models()
            except HearthError as exc:
                # An engine that boots after us must not keep Hearth down; it serves
                # nothing until a later list_models()/health() succeeds. Logged under the
                # adapter's module, where operators filter for it.
                logging.getLogger(type(self).__module__).warning(
                    "engine %r: model discovery failed: %s", self.name, exc
                )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def list_models(self) -> list[str]:
        return self._remember(await self._fetch_models(quick=False))

    async def health(self) -> bool:
        try:
            self._remember(await self._fetch_models(quick=True))
        except HearthError:
            return False
        return True

    # --- what each protocol supplies -------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        """Headers for every request (credentials, say)."""
        return {}

    def _unix_socket(self) -> str | None:
        """A Unix socket to reach the engine through, instead of base_url's host and port."""
        return None

    @abstractmethod
    async def _fetch_models(self, *, quick: bool) -> list[str]:
        """The engine's model names; `quick`: a probe, so within the connect timeout."""

    @staticmethod
    @abstractmethod
    def _error_info(body: bytes, *, fallback: str) -> ErrorInfo:
        """Read an error body in the shape this engine's API uses."""

    # --- HTTP plumbing -------------------------------------------------------------------

    @property
    def _http(self) -> WireClient:
        if self._client is None:
            raise RuntimeError(f"engine '{self.name}' is not started")
        return self._client

    def _url(self, path: str) -> str:
        """`path` under base_url (or an absolute URL as it is)."""
        return path if "://" in path else self._base + path.lstrip("/")

    def _remember(self, names: list[str]) -> list[str]:
        if self._discover:
            # A model list does not say which models embed, so discovered ones are chat
            # models; configure embedding models explicitly.
            self._models = [ModelConfig(name=name) for name in names]
        return names

    async def _get(self, path: str, *, quick: bool = False) -> HttpReply:
        """GET and read the whole reply, whatever its status. `quick`: a probe, which
        must answer within the connect timeout rather than wait out a busy engine."""
        total = self.config.connect_timeout if quick else None
        return await self._request("GET", path, None, total=total)

    async def _get_json(self, path: str, *, what: str, quick: bool = False) -> Any:
        response = await self._get(path, quick=quick)
        self._raise_for_status(response, model=None)
        return self._loads(response.content, what)

    async def _post_json(self, path: str, payload: dict[str, Any], *, model: str) -> Any:
        return self._loads(await self._post(path, payload, model=model), path)

    async def _post(self, path: str, payload: dict[str, Any], *, model: str) -> bytes:
        """POST JSON; the successful reply's body, undecoded."""
        response = await self._request("POST", path, orjson.dumps(payload))
        self._raise_for_status(response, model=model)
        return response.content

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | None,
        *,
        total: float | None = None,
    ) -> HttpReply:
        with self._transport_errors():
            response = await self._http.request(
                method, self._url(path), body, _JSON_HEADERS, total=total
            )
            content = await response.read()  # releases the connection, whatever happens
        return HttpReply(response.status, response.reason, content, response.path)

    @asynccontextmanager
    async def _stream(
        self, path: str, payload: dict[str, Any], *, accept: str, model: str
    ) -> AsyncIterator[HttpStream]:
        """POST `payload` and hand over the successful response to read as a stream.

        Read inside the `async with`: errors while sending and while reading are both
        translated, and leaving it (including aclose() at a `yield`) closes the upstream
        response, which makes the engine stop generating.
        """
        headers = _stream_headers(accept)
        with self._transport_errors():
            response = await self._http.request(
                "POST", self._url(path), orjson.dumps(payload), headers, stream=True
            )
            try:
                if not 200 <= response.status < 300:
                    content = await response.read()
                    reply = HttpReply(response.status, response.reason, content, response.path)
                    self._raise_for_status(reply, model=model)
                yield HttpStream(response)
            finally:
                # Unless read to its end, this closes the connection: the engine stops.
                response.release()

    @contextmanager
    def _transport_errors(self) -> Iterator[None]:
        try:
            yield
        except ConnectTimeout as exc:
            raise EngineTimeout(f"engine '{self.name}' timed out (connect)") from exc
        except ReadTimeout as exc:  # between two reads, or a probe's total
            raise EngineTimeout(f"engine '{self.name}' timed out (read)") from exc
        except Unreachable as exc:
            raise EngineUnavailable(f"engine '{self.name}' is unreachable: {exc}") from exc
        except ProtocolError as exc:
            # Protocol errors, including a connection dropped in the middle of a body.
            reason = str(exc) or type(exc).__name__
            raise UpstreamError(f"engine '{self.name}' broke the HTTP exchange: {reason}") from exc

    def _raise_for_status(self, response: HttpReply, *, model: str | None) -> None:
        status = response.status_code
        if response.is_success:
            return
        info = self._error_info(response.content, fallback=response.reason_phrase)
        where = f"engine '{self.name}' answered {status}"
        if status in self._busy_statuses:
            raise EngineUnavailable(f"engine '{self.name}' is busy ({status}): {info.message}")
        if status in _UNAVAILABLE:
            raise EngineUnavailable(f"{where}: {info.message}")
        if status >= 500 or status < 400:
            raise UpstreamError(f"{where}: {info.message}")
        if status in (401, 403):
            # Our credentials, or a proxy's rule: reporting 4xx would blame the caller.
            raise UpstreamError(f"{where}: {self._auth_refused}")
        if status == 404:
            # A 404 in the API's error shape is about the model; a plain one (a router's
            # "404 page not found") means the path, so base_url, is wrong.
            if model is not None and info.structured:
                raise ModelNotFound(model)
            raise UpstreamError(f"{where} for {response.path}; check base_url")
        text = f"{info.message} {info.code}".lower()
        if any(hint in text for hint in self._context_hints):
            raise ContextLengthExceeded(info.message, param=info.param)
        # The client's mistake (a bad parameter or option): show the engine's own words.
        raise InvalidRequest(info.message, param=info.param)

    # --- decoding --------------------------------------------------------------------------

    def _loads(self, body: bytes | str, what: str) -> Any:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"engine '{self.name}' sent malformed JSON ({what})") from exc

    def _validate_json(self, model: type[_M], body: bytes, what: str) -> _M:
        """Decode and validate in one pass (pydantic's parser); on failure, the same
        errors as `_loads` then `_validate` give."""
        try:
            return model.model_validate_json(body)
        except ValidationError:
            return self._validate(model, self._loads(body, what), what)

    def _validate(self, model: type[_M], payload: Any, what: str) -> _M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            raise UpstreamError(
                f"engine '{self.name}' sent an invalid {what}: {where}: {first['msg']}"
            ) from exc


def clip(text: str, limit: int = 300) -> str:
    """Upstream text short enough to put in an error message."""
    return text if len(text) <= limit else text[:limit] + "..."
