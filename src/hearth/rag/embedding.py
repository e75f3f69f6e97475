"""The embedder retrieval uses: any embedding model the gateway serves (local MiniLM by
default, or a remote /v1/embeddings or Ollama engine), called through the gateway, so that
documents get what /v1 callers get: balancing over the model's deployments, failover to
another one (or to a fallback model) when one fails, breakers, metrics and usage rows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hearth.errors import EngineUnavailable, ModelNotFound

if TYPE_CHECKING:
    from hearth.gateway.service import Gateway

_BATCH = 64  # per call to the engine; the local engine sub-batches by length itself


class Embedder:
    def __init__(self, gateway: Gateway, model: str) -> None:
        self.gateway = gateway
        self.model = model

    async def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors for `texts` (a document's chunks), in order, and the number of tokens
        embedded."""
        self.check_served()
        vectors: list[list[float]] = []
        tokens = 0
        for start in range(0, len(texts), _BATCH):
            result, _ = await self.gateway.embed_texts(
                self.model, texts[start : start + _BATCH], endpoint="documents"
            )
            vectors += result.vectors
            tokens += result.prompt_tokens
        return vectors, tokens

    def check_served(self) -> None:
        """Raise EngineUnavailable unless some engine serves the model, as an embedding
        model (a chat model's name is the caller's mistake, reported as such)."""
        try:
            self.gateway.routes.model(self.model, "embedding")
        except ModelNotFound:
            raise EngineUnavailable(
                f"documents need the embedding model '{self.model}', which no engine serves"
            ) from None

    async def embed_query(self, text: str) -> list[float]:
        self.check_served()
        result, _ = await self.gateway.embed_texts(self.model, [text], endpoint="search")
        return result.vectors[0]
