"""Public model names → the engine that serves each and the engine's own name for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hearth.config import ModelConfig
from hearth.engines.base import Engine
from hearth.errors import ConfigError, InvalidRequest, ModelNotFound


@dataclass(frozen=True)
class Route:
    model: ModelConfig
    engine: Engine

    @property
    def upstream(self) -> str:
        return self.model.upstream_name


class ModelRoutes:
    def __init__(self, engines: list[Engine]) -> None:
        self.engines = engines
        self._routes: dict[str, Route] = {}

    def refresh(self) -> None:
        """Rebuild the table from what each engine serves (engines may discover models)."""
        routes: dict[str, Route] = {}
        for engine in self.engines:
            for model in engine.models():
                if model.name in routes:
                    other = routes[model.name].engine.name
                    raise ConfigError(
                        f"model '{model.name}' is served by both '{other}' and '{engine.name}'"
                    )
                routes[model.name] = Route(model, engine)
        self._routes = routes

    def all(self) -> list[Route]:
        return list(self._routes.values())

    def resolve(self, name: str, type: Literal["chat", "embedding"]) -> Route:
        route = self._routes.get(name)
        if route is None:
            raise ModelNotFound(name)
        if route.model.type != type:
            raise InvalidRequest(
                f"'{name}' is a {route.model.type} model; it cannot serve {type} requests",
                param="model",
            )
        return route

    def default_chat_model(self, preferred: str | None) -> str | None:
        chat = [r.model.name for r in self._routes.values() if r.model.type == "chat"]
        if preferred in chat:
            return preferred
        return chat[0] if chat else None
