"""Typed domain errors; service/api/errors.py maps them to HTTP responses."""


class AppError(Exception):
    """An expected failure the caller can act on, with a stable code and an optional field."""

    code = "error"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(AppError):
    """The named thing does not exist (or is not visible to the caller)."""

    code = "not_found"


class Conflict(AppError):
    """The request clashes with the current state (duplicate, expired lease, ...)."""

    code = "conflict"


class Invalid(AppError):
    """The request is well-formed JSON but breaks a rule of the domain."""

    code = "invalid"


class Forbidden(AppError):
    """The caller's role does not allow this."""

    code = "forbidden"


class Unauthorized(AppError):
    """No valid API key was given."""

    code = "unauthorized"
