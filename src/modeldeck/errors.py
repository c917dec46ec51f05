"""One error hierarchy: every error knows its HTTP status and renders one JSON shape.

    {"error": {"code": "not_found", "message": "...", "details": {...}}}

Routes never build error payloads themselves; they raise and the app's handler renders.
"""

from __future__ import annotations

from typing import Any


class ModeldeckError(Exception):
    """Base of every error a user can see."""

    status_code: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}  # HTTP headers the answer carries (``Retry-After``)

    def to_dict(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON error shape used on every route."""
    return {"error": {"code": code, "message": message, "details": details or {}}}


class BadRequest(ModeldeckError):
    status_code = 400
    code = "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class Unauthorized(ModeldeckError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ModeldeckError):
    status_code = 403
    code = "forbidden"


class NotFound(ModeldeckError):
    status_code = 404
    code = "not_found"


class Conflict(ModeldeckError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(ModeldeckError):
    status_code = 413
    code = "payload_too_large"


class ValidationFailed(ModeldeckError):
    status_code = 422
    code = "validation_failed"


class TooManyRequests(ModeldeckError):
    """Every replica of a deployment is busy; the caller should retry after ``Retry-After``."""

    status_code = 429
    code = "too_many_requests"


class ModelError(ModeldeckError):
    """The model's own code raised while predicting."""

    status_code = 500
    code = "model_error"


class ModelCrashed(ModeldeckError):
    """The replica handling the request died while it did (the request may be what killed it,
    so it is not sent to another replica)."""

    status_code = 502
    code = "model_crashed"


class ServiceUnavailable(ModeldeckError):
    status_code = 503
    code = "unavailable"


class GatewayTimeout(ModeldeckError):
    status_code = 504
    code = "timeout"


class ConfigurationError(ModeldeckError):
    """The platform cannot start as configured (bad path, unreachable store...)."""

    code = "configuration_error"
