"""Driving an HTTP engine adapter against a fake upstream: what the engine tests share.

Each test module binds these to its own adapter and fake; what it asserts stays there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, Generic, TypeVar

import pytest

from hearth.config import ModelConfig
from hearth.engines.base import Engine
from hearth.engines.protocol import ChatCompletionChunk, ChatCompletionRequest
from hearth.errors import HearthError, InvalidRequest, ModelNotFound
from tests.fakes._server import FakeServer

C = TypeVar("C")
E = TypeVar("E", bound=Engine)
F = TypeVar("F", bound=FakeServer)
T = TypeVar("T")


def upstream_fixtures(fake: type[F]) -> tuple[object, object]:
    """Fixtures to assign to `shared_upstream, upstream` in a test module: one `fake`
    server for the module, and that server reset to its defaults for each test."""

    @pytest.fixture(scope="module")
    def shared_upstream() -> Iterator[F]:
        with fake() as server:
            yield server

    @pytest.fixture
    def upstream(shared_upstream: F) -> F:
        shared_upstream.reset()
        return shared_upstream

    return shared_upstream, upstream


class EngineHarness(Generic[C, E]):
    """Configs for, and running of, one adapter's engines (`engine` built from a `config`).

    `secret` is a string, such as an API key, that no error message may contain.
    """

    def __init__(
        self, engine: Callable[[C], E], config: Callable[..., C], *, secret: str | None = None
    ) -> None:
        self._engine = engine
        self._config = config
        self._secret = secret

    def config(self, base_url: str, **overrides: Any) -> C:
        values: dict[str, Any] = {
            "name": "fake",
            "base_url": base_url,
            "models": [ModelConfig(name="chat")],
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
        }
        return self._config(**(values | overrides))

    @asynccontextmanager
    async def started(self, cfg: C) -> AsyncIterator[E]:
        engine = self._engine(cfg)
        await engine.start()
        try:
            yield engine
        finally:
            await engine.close()

    def run_with(self, cfg: C, body: Callable[[E], Awaitable[T]]) -> T:
        """Start an engine, run `body` with it, close it; all in one event loop."""

        async def main() -> T:
            async with self.started(cfg) as engine:
                return await body(engine)

        return asyncio.run(main())

    def fails_with(self, cfg: C, body: Callable[[E], Awaitable[Any]]) -> HearthError:
        """The error `body` raises; one that is not the client's fault must name the engine."""
        try:
            self.run_with(cfg, body)
        except HearthError as exc:
            # Explicit messages: pytest does not rewrite asserts outside test modules.
            assert "fake" in exc.message or isinstance(exc, InvalidRequest | ModelNotFound), (
                f"the error does not name the engine: {exc!r}"
            )
            if self._secret is not None:
                assert self._secret not in exc.message, "the error shows the secret"
            return exc
        raise AssertionError("no exception raised")

    def fails_mid_stream(
        self, cfg: C, request: ChatCompletionRequest
    ) -> tuple[HearthError, list[ChatCompletionChunk]]:
        """The error streaming `request` ends in, and the chunks passed on before it."""
        received: list[ChatCompletionChunk] = []

        async def body(engine: E) -> None:
            async for chunk in engine.chat_stream(request):
                received.append(chunk)

        return self.fails_with(cfg, body), received


def chat_request(model: str, **fields: Any) -> ChatCompletionRequest:
    fields.setdefault("messages", [{"role": "user", "content": "Hi"}])
    return ChatCompletionRequest(model=model, **fields)


async def collect(engine: Engine, request: ChatCompletionRequest) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in engine.chat_stream(request)]


def either(streaming: bool, request: ChatCompletionRequest) -> Callable[[Engine], Awaitable[Any]]:
    """A body for `run_with` that sends `request` streamed or not."""
    if streaming:
        return lambda engine: collect(engine, request)
    return lambda engine: engine.chat(request)


@asynccontextmanager
async def dying_server(content_type: bytes, first_part: bytes) -> AsyncIterator[int]:
    """A server that starts a chunked 200 with `first_part`, then hangs up, as one that
    dies mid-body does. Yields its port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: " + content_type + b"\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n" % (len(first_part), first_part)
        )
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
