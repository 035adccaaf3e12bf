"""Domain errors. Services raise these; one middleware maps them to HTTP statuses and WS codes.

`code` is stable (clients and tests key on it); `message` is safe to show a user and never
carries a token, a secret or PHI.
"""

from __future__ import annotations


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    ws_close_code: int = 4400

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        if code is not None:
            self.code = code


class InvalidInput(DomainError):
    """The request is malformed or a field is invalid."""

    status = 400
    code = "invalid_input"
    ws_close_code = 4400


class Unauthenticated(DomainError):
    """Authentication is required."""

    status = 401
    code = "unauthenticated"
    ws_close_code = 4401


class Forbidden(DomainError):
    """This action is not allowed."""

    status = 403
    code = "forbidden"
    ws_close_code = 4403


class NotFound(DomainError):
    """Not found."""

    status = 404
    code = "not_found"
    ws_close_code = 4404


class Conflict(DomainError):
    """The resource is not in a state that allows this."""

    status = 409
    code = "conflict"
    ws_close_code = 4409


class Gone(DomainError):
    """This link or token is invalid or expired."""

    status = 410
    code = "gone"
    ws_close_code = 4410


class PayloadTooLarge(DomainError):
    """The request is too large."""

    status = 413
    code = "too_large"
    ws_close_code = 1009


class RateLimited(DomainError):
    """Too many attempts; try again later."""

    status = 429
    code = "rate_limited"
    ws_close_code = 4429

    def __init__(self, message: str = "", *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = max(1.0, retry_after_s)


class Unavailable(DomainError):
    """A backing service is unavailable."""

    status = 503
    code = "unavailable"
    ws_close_code = 1013


class ConfigError(Exception):
    """Invalid configuration. The message names the setting and the problem, on one line."""
