"""/v1/embeddings through the openai SDK: the real all-MiniLM-L6-v2, 384 dimensions."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai

from hearth.config import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDING_MODEL

MODEL = DEFAULT_EMBEDDING_MODEL


def test_sdk_embeds_string_and_list(base_url: str) -> None:
    # The SDK asks for base64 by default and decodes it; check it gets real vectors.
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    one = client.embeddings.create(model=MODEL, input="The cat sat on the mat.")
    assert one.model == MODEL and len(one.data) == 1
    assert len(one.data[0].embedding) == 384
    assert one.usage.prompt_tokens > 5

    texts = [
        "A cat is sitting on a mat.",
        "Quarterly revenue grew by ten percent.",
        "The cat sat on the mat.",
    ]
    many = client.embeddings.create(model=MODEL, input=texts)
    assert [d.index for d in many.data] == [0, 1, 2]
    vectors = np.array([d.embedding for d in many.data])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-3)
    # Same text, nearly the same vector (the int8 model quantises activations per batch, so
    # batch mates move it slightly); a paraphrase is closer than an unrelated sentence.
    assert vectors[2] @ np.array(one.data[0].embedding) > 0.98
    assert vectors[2] @ vectors[0] > vectors[2] @ vectors[1] + 0.3


def test_float_and_base64_agree(base_url: str) -> None:
    body = {"model": MODEL, "input": ["hello world"]}
    floats = httpx.post(f"{base_url}/v1/embeddings", json={**body, "encoding_format": "float"})
    b64 = httpx.post(f"{base_url}/v1/embeddings", json={**body, "encoding_format": "base64"})
    assert floats.status_code == b64.status_code == 200
    decoded = np.frombuffer(base64.b64decode(b64.json()["data"][0]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, floats.json()["data"][0]["embedding"], atol=1e-6)
    assert floats.json()["object"] == "list"
    assert floats.json()["data"][0]["object"] == "embedding"


def test_a_model_of_the_other_type_is_a_400_in_plain_english(base_url: str) -> None:
    chat = httpx.post(
        f"{base_url}/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 400
    error = chat.json()["error"]
    assert error["param"] == "model"
    assert error["message"] == (f"'{MODEL}' is an embedding model; it cannot serve chat requests")
    embed = httpx.post(
        f"{base_url}/v1/embeddings", json={"model": DEFAULT_CHAT_MODEL, "input": "hi"}
    )
    assert embed.status_code == 400
    assert "is a chat model; it cannot serve embedding requests" in embed.json()["error"]["message"]


def test_a_field_embeddings_cannot_honour_is_a_400_naming_it(base_url: str) -> None:
    refused = httpx.post(
        f"{base_url}/v1/embeddings",
        json={"model": MODEL, "input": "hi", "truncate_prompt_tokens": 8},
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["param"] == "truncate_prompt_tokens"
