"""The local embedding engine: all-MiniLM-L6-v2 (384 dimensions) from pip packages, offline.

Backend "onnx-int8" (default) runs the model with int8 matrix products on onnxruntime,
"onnx-fp32" the same graph in fp32 (see `_minilm_onnx`); "torch-fp32" runs the original
weights through sentence-transformers and serves as the reference.

Inference is CPU-bound, so it runs on dedicated threads, one batch per thread and one core
per batch: the event loop stays free, and small batches (a few texts of ~200 tokens) keep
a core busier on their own than split across several, without threads that spin waiting
for each other on a machine shared with other processes. A request puts at most one batch
per thread in the queue at a time, so a one-line query waits for at most one batch of a
large ingestion, not for all of it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

from hearth.config import EmbedderEngineConfig, EmbedderModelConfig
from hearth.engines._minilm import Encoder, OnnxEncoder, TorchEncoder
from hearth.engines.base import Embeddings, Engine
from hearth.errors import ConfigError, EngineUnavailable, ModelNotFound

T = TypeVar("T")


class EmbedderEngine(Engine):
    kind = "embedder"

    def __init__(self, config: EmbedderEngineConfig) -> None:
        super().__init__(config.name)
        self._config = config
        self._models = {m.upstream_name: m for m in config.models}
        if len(self._models) != len(config.models):
            names = [m.upstream_name for m in config.models]
            raise ConfigError(f"engine '{config.name}' serves duplicate model names: {names}")
        self._encoders: dict[str, Encoder] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._threads = config.threads or os.cpu_count() or 1

    def models(self) -> list[EmbedderModelConfig]:
        return list(self._config.models)

    @property
    def slots(self) -> int:
        """Batches embedded at once: one per thread."""
        return self._threads

    @property
    def dimensions(self) -> int:
        """Vector size (384 for all-MiniLM-L6-v2); known once started."""
        if not self._encoders:
            raise EngineUnavailable(f"embedding engine '{self.name}' is not started")
        return next(iter(self._encoders.values())).dimensions

    async def start(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self._threads, thread_name_prefix=f"embedder-{self.name}"
            )
        for upstream, model in self._models.items():
            if upstream not in self._encoders:
                self._encoders[upstream] = await self._run(self._load, model)

    async def close(self) -> None:
        self._encoders.clear()
        if self._executor is not None:
            # A batch already running finishes in its thread; queued ones are dropped.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def list_models(self) -> list[str]:
        return list(self._models)

    async def health(self) -> bool:
        return self._executor is not None and len(self._encoders) == len(self._models)

    async def embed(self, model: str, texts: list[str]) -> Embeddings:
        if model not in self._models:
            raise ModelNotFound(model)
        encoder = self._encoders.get(model)
        if encoder is None:
            raise EngineUnavailable(f"embedding engine '{self.name}' is not started")
        if not texts:
            return Embeddings(vectors=[], prompt_tokens=0)

        # Tokenising is quick and thread-safe, so it does not queue behind other requests'
        # batches on the inference thread.
        ids = await asyncio.to_thread(encoder.tokenize, texts)
        # Sorted by length, each batch holds texts of similar length and pads little.
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
        vectors = np.empty((len(texts), encoder.dimensions), dtype=np.float32)
        size = self._models[model].texts_per_batch
        batches = iter(range(0, len(order), size))

        async def work() -> None:  # one per thread: takes the next batch until none is left
            for start in batches:
                batch = order[start : start + size]
                vectors[batch] = await self._run(
                    encoder.encode, [texts[i] for i in batch], [ids[i] for i in batch]
                )

        lanes = min(self._threads, -(-len(order) // size))
        await asyncio.gather(*(work() for _ in range(lanes)))
        return Embeddings(vectors=vectors.tolist(), prompt_tokens=sum(len(row) for row in ids))

    def _load(self, model: EmbedderModelConfig) -> Encoder:
        if model.backend == "torch-fp32":
            return TorchEncoder(model.max_tokens)
        variant = "fp32" if model.backend == "onnx-fp32" else "int8"
        return OnnxEncoder(variant, model.max_tokens, self._config.cache_dir)

    async def _run(self, func: Callable[..., T], *args: object) -> T:
        if self._executor is None:
            raise EngineUnavailable(f"embedding engine '{self.name}' is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, func, *args)
