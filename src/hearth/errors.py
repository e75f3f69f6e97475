"""Domain exceptions. Services raise these; `server.py` maps each to a status and a shape.

Each carries the HTTP status and the OpenAI error `type`/`code` it becomes on /v1.
"""

from __future__ import annotations


class HearthError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None
    # Seconds after which the request may pass; answers carry it as Retry-After.
    retry_after: float | None = None

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


class NotFound(HearthError):
    """Also what a caller gets for something that exists but is not theirs to see."""

    status = 404
    type = "invalid_request_error"
    code = "not_found"


class Conflict(HearthError):
    """The request is valid but clashes with what exists: a name taken, a row still in use."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class Forbidden(HearthError):
    status = 403
    type = "permission_error"
    code = "forbidden"


class ModelNotAllowed(HearthError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"

    def __init__(self, model: str) -> None:
        super().__init__(f"This API key may not use the model '{model}'.", param="model")


class Unauthenticated(HearthError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


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
    retry_after: float | None = 1.0


class EngineBusy(EngineUnavailable):
    """The engine's queue is full: another replica, or this one a moment later, can serve."""

    code = "engine_overloaded"


class DependencyUnavailable(HearthError):
    """PostgreSQL or Redis cannot be reached (hearth.http.outages tells them apart)."""

    status = 503
    code = "service_unavailable"
    retry_after: float | None = 2.0


class EngineTimeout(HearthError):
    status = 504
    code = "upstream_timeout"


class ConfigError(Exception):
    """Configuration that cannot work (a missing model file, a bad engine declaration)."""


class RateLimited(HearthError):
    """Over a request, token, concurrency or spend limit.

    `retry_after` is the seconds until the request would pass; `limit` names the limit
    that refused it (`requests_per_minute`, `tokens_per_minute`, `max_concurrent`, `budget`).
    """

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        limit: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        if code is not None:
            self.code = code
