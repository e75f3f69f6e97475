"""Every /v1 endpoint's bad input gets OpenAI's error shape and the right status."""

from __future__ import annotations

import httpx
import openai
import pytest

from hearth.config import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL

MODEL = DEFAULT_CHAT_MODEL
HELLO = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def assert_error(
    resp: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"messages": HELLO}, "model"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
        ({"model": MODEL, "messages": HELLO, "temperature": 3}, "temperature"),
        ({"model": MODEL, "messages": HELLO, "top_p": 0}, "top_p"),
        ({"model": MODEL, "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": MODEL, "messages": HELLO, "n": 2}, "n"),
        ({"model": MODEL, "messages": HELLO, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": MODEL, "messages": "hi"}, "messages"),
        # As strict as OpenAI: no coercion of strings to numbers or booleans, no null text.
        ({"model": MODEL, "messages": HELLO, "max_tokens": "10"}, "max_tokens"),
        ({"model": MODEL, "messages": HELLO, "stream": "yes"}, "stream"),
        ({"model": MODEL, "messages": HELLO, "temperature": "0.5"}, "temperature"),
        ({"model": MODEL, "messages": [{"role": "user", "content": None}]}, "messages.0"),
        ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"model": 7, "messages": HELLO}, "model"),
    ],
)
def test_invalid_chat_request_is_400(base_url: str, body: dict, param: str) -> None:
    resp = httpx.post(f"{base_url}/v1/chat/completions", json=body)
    assert_error(resp, 400, param=param)


def test_malformed_json_is_400(base_url: str) -> None:
    for path in ("/v1/chat/completions", "/v1/embeddings"):
        resp = httpx.post(
            f"{base_url}{path}", content=b'{"model": ', headers={"content-type": "application/json"}
        )
        assert_error(resp, 400, code="json_invalid")


def test_non_text_content_part_is_400(base_url: str) -> None:
    body = {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ],
            }
        ],
    }
    assert_error(httpx.post(f"{base_url}/v1/chat/completions", json=body), 400)


def test_prompt_longer_than_context_is_400(client: openai.OpenAI) -> None:
    long = "word " * 3000  # well past the 2048-token window
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=4
        )
    assert info.value.body["code"] == "context_length_exceeded"
    # ... and the same when streaming: the error comes before the stream starts.
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=4, stream=True
        )


def test_chat_with_an_embedding_model_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=DEFAULT_EMBEDDING_MODEL, messages=HELLO)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=MODEL, input="x")


@pytest.mark.parametrize(
    "body",
    [
        {"model": DEFAULT_EMBEDDING_MODEL},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": []},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": [""]},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": [[1, 2, 3]]},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": "x", "encoding_format": "int8"},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": "x", "dimensions": 512},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": "x", "dimensions": "384"},
        {"model": DEFAULT_EMBEDDING_MODEL, "input": 12},
    ],
)
def test_invalid_embedding_request_is_400(base_url: str, body: dict) -> None:
    assert_error(httpx.post(f"{base_url}/v1/embeddings", json=body), 400)


def test_oversize_body_is_413(base_url: str) -> None:
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert_error(
        httpx.post(f"{base_url}/v1/chat/completions", json=big), 413, code="request_too_large"
    )

    def chunked():  # no content-length: the limit applies while the body is read
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(80):
            yield b"x" * 1000
        yield b'"}]}'

    resp = httpx.post(
        f"{base_url}/v1/chat/completions",
        content=chunked(),
        headers={"content-type": "application/json"},
    )
    assert_error(resp, 413, code="request_too_large")


def test_unknown_route_and_method(base_url: str) -> None:
    assert_error(httpx.post(f"{base_url}/v1/nope", json={}), 404)
    assert_error(httpx.get(f"{base_url}/v1/chat/completions"), 405)


def test_max_tokens_beyond_the_context_window_is_400(client: openai.OpenAI) -> None:
    # Asked of the local engine, whose window is 2,048 tokens: refused at once, instead of
    # generating until the window is full for a client that may be long gone.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=10**9)
    assert refused.value.param == "max_tokens" and "2048" in refused.value.message
    with pytest.raises(openai.BadRequestError) as streamed:
        list(
            client.chat.completions.create(
                model=MODEL, messages=HELLO, max_tokens=4096, stream=True
            )
        )
    assert streamed.value.param == "max_tokens"
