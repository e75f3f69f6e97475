"""Domain exceptions. Services raise these; `server.py` maps each to a status and a shape.

Each carries the HTTP status and the OpenAI error `type`/`code` it becomes on /v1.
"""

from __future__ import annotations


class HearthError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequest(HearthError):
    status = 400
    type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class ModelNotFound(HearthError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist or is not served here.", param="model"
        )


class RequestTooLarge(HearthError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UpstreamError(HearthError):
    """The engine answered, but not with something we can use."""

    status = 502
    code = "bad_upstream_response"


class EngineUnavailable(HearthError):
    status = 503
    code = "engine_unavailable"


class EngineTimeout(HearthError):
    status = 504
    code = "upstream_timeout"


class ConfigError(Exception):
    """Configuration that cannot work (a missing model file, a bad engine declaration)."""
