"""Which chat models read images (OpenAI `image_url` content parts), and the refusal of
images sent to one that does not.

A model's `vision` setting decides; left empty, what its engine reports (llama-server's
/props `modalities.vision`, Ollama's /api/show `capabilities`); an engine that says nothing
leaves it unknown. The chat (web UI and `/api/chats`) attaches images only to a model known
to read them. `/v1` refuses image parts only for a model known not to read them (the local
llama.cpp engine, a model set `vision = false`); an unknown one is passed them, and its
engine answers for itself, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

from hearth.engines.protocol import ChatCompletionRequest
from hearth.errors import InvalidRequest
from hearth.gateway.routing import ModelRoutes


@dataclass(frozen=True)
class Vision:
    """Whether a model reads images (None: unknown), and where that comes from."""

    model: str
    reads_images: bool | None
    source: str  # "its configuration", "its engine", "nothing" (unknown)

    @property
    def why_not(self) -> str:
        """Why the model is not given images, as the refusal says it."""
        if self.reads_images is None:
            return "neither its configuration (`vision`) nor its engine says it reads images"
        if self.source == "its configuration":
            return "it is configured with vision = false"
        return "its engine reports it reads text only"


def vision(routes: ModelRoutes, model: str) -> Vision:
    """What is known of `model` reading images (its first deployment's, as its window)."""
    served = routes.find(model)
    if served is None:
        return Vision(model, None, "nothing")
    deployment = served.deployments[0]
    if deployment.model.vision is not None:
        return Vision(model, deployment.model.vision, "its configuration")
    reported = deployment.engine.takes_images(deployment.upstream)
    return Vision(model, reported, "its engine" if reported is not None else "nothing")


def image_part(request: ChatCompletionRequest) -> str | None:
    """Where the request's first image part is (`messages[i].content[j]`), or None."""
    for i, message in enumerate(request.messages):
        if isinstance(message.content, list):
            for j, part in enumerate(message.content):
                if isinstance(part, dict) and part.get("type") in ("image_url", "input_image"):
                    return f"messages[{i}].content[{j}]"
    return None


def refuse_images(routes: ModelRoutes, request: ChatCompletionRequest) -> None:
    """A 400 naming the model when the request carries an image and the model is known not
    to read images; before any engine is asked."""
    where = image_part(request)
    if where is None:
        return
    known = vision(routes, request.model)
    if known.reads_images is False:
        raise InvalidRequest(
            f"model '{request.model}' cannot read images ({known.why_not}); send text "
            "only, or use a model that reads images",
            param=where,
        )
