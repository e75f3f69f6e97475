"""Public model names → their deployments: each an engine and the engine's own name for it.

An engine's `models` list declares what it serves, as before; two engines listing the same
public name become two deployments of that model, balanced by their `weight`. A model's
`fallbacks` (the union of its deployments' lists, in order) are tried when all of its
deployments fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hearth.config import ModelConfig
from hearth.engines.base import Engine
from hearth.errors import ConfigError, InvalidRequest, ModelNotFound


@dataclass(frozen=True)
class Deployment:
    """One engine serving one public model. Its id is the engine's name (an engine serves
    a public name once), which is what usage rows and metrics call the deployment."""

    model: ModelConfig
    engine: Engine

    @property
    def id(self) -> str:
        return self.engine.name

    @property
    def upstream(self) -> str:
        return self.model.upstream_name


@dataclass(frozen=True)
class ServedModel:
    name: str
    type: Literal["chat", "embedding"]
    deployments: tuple[Deployment, ...]
    fallbacks: tuple[str, ...]


class ModelRoutes:
    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines
        self._models: dict[str, ServedModel] = {}

    def refresh(self) -> None:
        """Rebuild the table from what each engine serves (engines may discover models)."""
        grouped: dict[str, list[Deployment]] = {}
        for engine in self.engines:
            seen: set[str] = set()
            for model in engine.models():
                if model.name in seen:
                    raise ConfigError(f"engine '{engine.name}' lists model '{model.name}' twice")
                seen.add(model.name)
                grouped.setdefault(model.name, []).append(Deployment(model, engine))
        models: dict[str, ServedModel] = {}
        for name, deployments in grouped.items():
            types = {d.model.type for d in deployments}
            if len(types) > 1:
                raise ConfigError(f"model '{name}' is declared both chat and embedding")
            fallbacks = list(dict.fromkeys(f for d in deployments for f in d.model.fallbacks))
            models[name] = ServedModel(
                name, deployments[0].model.type, tuple(deployments), tuple(fallbacks)
            )
        for model in models.values():
            for fallback in model.fallbacks:
                # Discovered models may come later; a fallback must at least not be itself
                # or of the wrong kind when it is known.
                other = models.get(fallback)
                if fallback == model.name or (other is not None and other.type != model.type):
                    raise ConfigError(f"model '{model.name}' cannot fall back to '{fallback}'")
        self._models = models

    def all(self) -> list[Deployment]:
        """One deployment per public model (the first declared): the list of names."""
        return [model.deployments[0] for model in self._models.values()]

    def models(self) -> list[ServedModel]:
        return list(self._models.values())

    def model(self, name: str, type: Literal["chat", "embedding"]) -> ServedModel:
        """The model clients call `name`, checked to serve `type` requests."""
        model = self._models.get(name)
        if model is None:
            raise ModelNotFound(name)
        if model.type != type:
            raise InvalidRequest(
                f"'{name}' is {'an' if model.type == 'embedding' else 'a'} {model.type} "
                f"model; it cannot serve {type} requests",
                param="model",
            )
        return model

    def find(self, name: str) -> ServedModel | None:
        return self._models.get(name)

    def resolve(self, name: str, type: Literal["chat", "embedding"]) -> Deployment:
        """The first deployment of `name`, for callers that do not balance."""
        return self.model(name, type).deployments[0]

    def default_chat_model(self, preferred: str | None) -> str | None:
        chat = [m.name for m in self._models.values() if m.type == "chat"]
        if preferred in chat:
            return preferred
        return chat[0] if chat else None
