"""The embedder retrieval uses: any embedding model the gateway serves (local MiniLM by
default, or a remote /v1/embeddings or Ollama engine), called through its engine."""

from __future__ import annotations

from hearth.errors import EngineUnavailable, ModelNotFound
from hearth.gateway.routing import ModelRoutes, Route

_BATCH = 64  # per call to the engine; the local engine sub-batches by length itself


class Embedder:
    def __init__(self, routes: ModelRoutes, model: str) -> None:
        self.routes = routes
        self.model = model

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts`, in order, and the number of tokens embedded."""
        route = self.resolve()
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), _BATCH):
            result = await route.engine.embed(route.upstream, texts[start : start + _BATCH])
            vectors += result.vectors
            tokens += result.prompt_tokens
        return vectors, tokens

    def resolve(self) -> Route:
        try:
            return self.routes.resolve(self.model, "embedding")
        except ModelNotFound:
            raise EngineUnavailable(
                f"documents need the embedding model '{self.model}', which no engine serves"
            ) from None

    async def embed_query(self, text: str) -> list[float]:
        vectors, _ = await self.embed([text])
        return vectors[0]
