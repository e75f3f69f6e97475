"""Fitting text into a model's context window without the model's tokenizer at hand: a
token per 3 characters is generous for English with the usual tokenizers, so a prompt
built by this estimate fits rather than gets cut."""

from __future__ import annotations

from hearth.gateway.routing import ModelRoutes

CHARS_PER_TOKEN = 3
DEFAULT_CONTEXT = 8192  # for engines that do not say (remote ones)
ANSWER_TOKENS = 512  # room kept for the answer when the request sets no limit


def estimate_tokens(text: str) -> int:
    return len(text) // CHARS_PER_TOKEN + 1


def context_window(routes: ModelRoutes, model: str) -> int:
    """The chat model's window in tokens, where its engine knows it (llama.cpp's n_ctx)."""
    route = routes.resolve(model, "chat")
    return getattr(route.model, "n_ctx", None) or DEFAULT_CONTEXT
