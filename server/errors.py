"""Domain errors. Services raise these; one middleware maps them to HTTP statuses and WS codes.

`code` is stable (clients and tests key on it); `message` is safe to show a user and never
carries a token, a secret or PHI.
"""

from __future__ import annotations


class DomainError(Exception):
    status: int = 400
    code: str = "bad_request"
    ws_close_code: int = 4400

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None,
                          ws_close_code: int | None = None) -> None:
        """An error may name its HTTP status, stable code and WS close code in its class line."""
        super().__init_subclass__()
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code
        if ws_close_code is not None:
            cls.ws_close_code = ws_close_code

    def __init__(self, message: str = "", *, code: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)
        self.message = message or (self.__class__.__doc__ or self.code).strip()
        if code is not None:
            self.code = code


class InvalidInput(DomainError, status=400, code="invalid_input", ws_close_code=4400):
    """The request is malformed or a field is invalid."""


class Unauthenticated(DomainError, status=401, code="unauthenticated", ws_close_code=4401):
    """Authentication is required."""


class Forbidden(DomainError, status=403, code="forbidden", ws_close_code=4403):
    """This action is not allowed."""


class NotFound(DomainError, status=404, code="not_found", ws_close_code=4404):
    """Not found."""


class Conflict(DomainError, status=409, code="conflict", ws_close_code=4409):
    """The resource is not in a state that allows this."""


class Gone(DomainError, status=410, code="gone", ws_close_code=4410):
    """This link or token is invalid or expired."""


class PayloadTooLarge(DomainError, status=413, code="too_large", ws_close_code=1009):
    """The request is too large."""


class RateLimited(DomainError, status=429, code="rate_limited", ws_close_code=4429):
    """Too many attempts; try again later."""

    def __init__(self, message: str = "", *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = max(1.0, retry_after_s)


class Unavailable(DomainError, status=503, code="unavailable", ws_close_code=1013):
    """A backing service is unavailable."""


class ConfigError(Exception):
    """Invalid configuration. The message names the setting and the problem, on one line."""
