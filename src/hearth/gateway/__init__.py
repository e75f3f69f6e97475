"""The OpenAI-compatible gateway: /v1 routes, model routing to engines."""
