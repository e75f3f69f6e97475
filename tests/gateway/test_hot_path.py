"""What keeps the gateway's per-request cost down, checked for behaviour: events that arrive
together are relayed together (and apart when apart, see test_remote_engine), start-up
objects are kept out of the garbage collector's full passes, and the chat route documents
the body it parses itself."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import Iterator

import httpx
import pytest

from hearth.config import ModelConfig, OpenAIEngineConfig, Settings
from hearth.engines.openai import OpenAIEngine
from hearth.engines.protocol import ChatCompletionRequest
from hearth.server import create_app
from tests._server import Running, running
from tests.fakes.openai_upstream import FakeOpenAIUpstream


def _event(i: int | None) -> bytes:
    """Event `i` (content "t<i>"), or with `None` the role-only chunk engines send first."""
    delta = {"role": "assistant", "content": ""} if i is None else {"content": f"t{i}"}
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
    }
    data = b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)  # one HTTP chunk per event, as engines do


async def _burst_upstream(events: int, *, role_first: bool = False) -> tuple[asyncio.Server, int]:
    """An engine that writes a whole stream at once: `events` events (after a role-only
    one, with `role_first`), then [DONE]."""
    body = b"".join(_event(i) for i in ([None] if role_first else []) + list(range(events)))
    body += b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    head += b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        length = int(request.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        writer.write(head + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("role_first", [False, True])
def test_events_that_arrive_together_are_relayed_as_one_batch_after_the_first(
    role_first: bool,
) -> None:
    async def main() -> list[int]:
        server, port = await _burst_upstream(20, role_first=role_first)
        engine = OpenAIEngine(
            OpenAIEngineConfig(
                name="burst", base_url=f"http://127.0.0.1:{port}/v1", models=[ModelConfig(name="m")]
            )
        )
        await engine.start()
        try:
            request = ChatCompletionRequest(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            sizes = [len(batch) async for batch in engine.chat_stream_batches(request)]
            # ... and one by one to whoever wants chunks, in the same order.
            texts = [c.choices[0].delta.content async for c in engine.chat_stream(request)]
        finally:
            await engine.close()
            server.close()
        assert texts == [""] * role_first + [f"t{i}" for i in range(20)]
        return sizes

    sizes = asyncio.run(main())
    assert sum(sizes) == 20 + role_first and len(sizes) < 20, sizes
    # The chunks up to the first token go on alone (a role-only chunk goes with the first
    # token, not ahead of it): the client's first token does not wait for the rest.
    assert sizes[0] == 1 + role_first and sizes[1] > 1, sizes


@pytest.fixture(scope="module")
def hearth(postgres, tmp_path_factory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    with FakeOpenAIUpstream(chunk_count=3) as upstream:
        settings = Settings(
            database_url=postgres.new_database(),
            data_dir=tmp_path_factory.mktemp("hot-path"),
            engines=[
                OpenAIEngineConfig(
                    name="gpu",
                    base_url=upstream.base_url,
                    models=[ModelConfig(name="m", upstream="ok")],
                )
            ],
        )
        with running(create_app(settings)) as server:
            yield server


def test_start_up_objects_are_frozen_out_of_full_collections(hearth: Running) -> None:
    # Modules, routes and models live as long as the process: a full collection need not
    # walk them again and again (it took over 100 ms, stalling every request meanwhile).
    assert gc.get_freeze_count() > 10_000
    reply = httpx.post(
        f"{hearth.url}/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert reply.status_code == 200 and reply.json()["model"] == "m"


def test_the_chat_route_documents_its_body(hearth: Running) -> None:
    operation = httpx.get(f"{hearth.url}/openapi.json").json()["paths"]["/v1/chat/completions"]
    schema = operation["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "messages"} <= set(schema["required"])
    role = schema["properties"]["messages"]["items"]["properties"]["role"]
    assert "assistant" in role["enum"]  # definitions inlined, no dangling $ref
    assert "$ref" not in json.dumps(schema)


def test_chat_completions_skip_the_middleware_stack_and_keep_their_errors(
    hearth: Running,
) -> None:
    app = hearth.app
    stack = app.middleware_stack
    assert stack is not None  # built at start-up
    passed: list[str] = []

    async def recording(scope, receive, send):  # type: ignore[no-untyped-def]
        passed.append(f"{scope.get('method')} {scope.get('path')}")
        await stack(scope, receive, send)

    app.middleware_stack = recording
    try:
        url = f"{hearth.url}/v1/chat/completions"
        ok = httpx.post(url, json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        bad = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
        unknown = httpx.post(url, json={"model": "nope", "messages": []})
        wrong_method = httpx.get(url)
        models = httpx.get(f"{hearth.url}/v1/models")
    finally:
        app.middleware_stack = stack
    assert ok.status_code == 200 and ok.headers["x-request-id"]
    # The app's exception handlers still answer, in OpenAI's shape.
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert unknown.status_code in (400, 404) and "error" in unknown.json()
    assert wrong_method.status_code == 405 and models.status_code == 200
    assert passed == ["GET /v1/chat/completions", "GET /v1/models"]
