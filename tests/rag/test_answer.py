"""Answers from documents: /api/collections/{id}/ask and /v1 requests with collections
attached, with the real SmolLM2 model and the real retrieval."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from hearth.config import DEFAULT_CHAT_MODEL
from tests._accounts import api_key, create_user
from tests._server import Running

MANUAL = b"""# Boiler manual

## Resetting

To reset the boiler, hold the red button for ten seconds until the light blinks green.

## Cleaning

Clean the filter every three months with warm water.
"""


@pytest.fixture(scope="module")
def key(hearth: Running) -> str:
    """One user's key, for the REST API and for /v1 (collections are per user)."""
    return api_key(hearth, create_user(hearth))


@pytest.fixture(scope="module")
def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def collection(base_url: str, auth: dict[str, str]) -> str:
    with httpx.Client(base_url=f"{base_url}/api", timeout=60, headers=auth) as api:
        collection = api.post("/collections", json={"name": "manuals"}).json()["id"]
        doc = api.post(
            f"/collections/{collection}/documents", files={"file": ("boiler.md", MANUAL)}
        ).json()
        deadline = time.monotonic() + 60
        while api.get(f"/documents/{doc['id']}").json()["status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    return collection


def test_ask_returns_an_answer_with_citations(
    base_url: str, collection: str, auth: dict[str, str]
) -> None:
    resp = httpx.post(
        f"{base_url}/api/collections/{collection}/ask",
        timeout=120,
        headers=auth,
        json={
            "question": "How do I reset the boiler?",
            "stream": False,
            "max_tokens": 40,
            "temperature": 0,
        },
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["answer"].strip() and body["model"] == DEFAULT_CHAT_MODEL
    assert "red button" in body["citations"][0]["text"]
    assert body["citations"][0]["headings"][-1] == "Resetting"
    assert body["usage"]["completion_tokens"] > 0


def test_ask_streams_citations_first(base_url: str, collection: str, auth: dict[str, str]) -> None:
    events: list[tuple[str, str]] = []
    with httpx.stream(
        "POST",
        f"{base_url}/api/collections/{collection}/ask",
        timeout=120,
        headers=auth,
        json={"question": "How often should the filter be cleaned?", "max_tokens": 30},
    ) as resp:
        assert resp.status_code == 200
        name = "message"
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, line[6:]))
                name = "message"
    assert events[0][0] == "citations"
    citations = json.loads(events[0][1])
    assert any("filter" in c["text"] for c in citations)
    assert events[-1] == ("message", "[DONE]")
    text = "".join(
        json.loads(d)["choices"][0]["delta"].get("content") or ""
        for _, d in events[1:-1]
        if json.loads(d)["choices"]
    )
    assert text.strip()


def test_v1_chat_with_collections_attached(base_url: str, collection: str, key: str) -> None:
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0)
    question = [{"role": "user", "content": "How do I reset the boiler?"}]
    reply = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL,
        messages=question,
        max_tokens=30,
        extra_body={"hearth": {"collections": [collection], "k": 3}},
    )
    citations = reply.model_extra["citations"]
    assert citations and "red button" in citations[0]["text"]

    stream = client.chat.completions.create(
        model=DEFAULT_CHAT_MODEL,
        messages=question,
        max_tokens=10,
        stream=True,
        extra_body={"hearth": {"collections": [collection]}},
    )
    chunks = list(stream)
    assert chunks[0].model_extra["citations"][0]["document_id"] == citations[0]["document_id"]
    assert all("citations" not in (c.model_extra or {}) for c in chunks[1:])


def test_many_passages_still_fit_the_context_window(
    base_url: str, collection: str, auth: dict[str, str]
) -> None:
    # SmolLM2 runs with a 2,048-token window here: k=50 must be trimmed, not overflow.
    resp = httpx.post(
        f"{base_url}/api/collections/{collection}/ask",
        timeout=120,
        headers=auth,
        json={"question": "boiler " * 200, "stream": False, "max_tokens": 8, "k": 50},
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize(
    "options", [{"collections": []}, {"collections": ["nope"]}, {"collections": "x"}, {"k": 3}]
)
def test_bad_attachment_is_400(base_url: str, options: dict) -> None:
    resp = httpx.post(
        f"{base_url}/v1/chat/completions",
        json={
            "model": DEFAULT_CHAT_MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "hearth": options,
        },
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "hearth"


def test_ask_unknown_collection_is_404(base_url: str, auth: dict[str, str]) -> None:
    resp = httpx.post(
        f"{base_url}/api/collections/00000000-0000-0000-0000-000000000000/ask",
        json={"question": "x"},
        headers=auth,
    )
    assert resp.status_code == 404


def test_v1_naming_a_collection_the_caller_cannot_read_is_404(
    hearth: Running, collection: str
) -> None:
    stranger = openai.OpenAI(
        base_url=f"{hearth.url}/v1", api_key=api_key(hearth, create_user(hearth)), max_retries=0
    )
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as refused:
            stranger.chat.completions.create(
                model=DEFAULT_CHAT_MODEL,
                messages=[{"role": "user", "content": "How do I reset the boiler?"}],
                max_tokens=5,
                stream=stream,
                extra_body={"hearth": {"collections": [collection]}},
            )
        assert refused.value.param == "hearth.collections"
        assert collection in refused.value.message


def test_v1_without_a_key_naming_someones_collection_is_401(base_url: str, collection: str) -> None:
    """On loopback /v1 answers without a key, as the local user, who cannot read another
    account's collection: a 401 that says a key is needed, never an answer without it."""
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0) as keyless:
        for stream in (False, True):
            with pytest.raises(openai.AuthenticationError) as refused:
                keyless.chat.completions.create(
                    model=DEFAULT_CHAT_MODEL,
                    messages=[{"role": "user", "content": "How do I reset the boiler?"}],
                    max_tokens=5,
                    stream=stream,
                    extra_body={"hearth": {"collections": [collection]}},
                )
            assert refused.value.param == "hearth.collections"
            assert "API key" in refused.value.message and collection in refused.value.message
