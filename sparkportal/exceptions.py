"""Errors that services raise; the API maps them to JSON with a status and a snake_case code."""


class ApplicationError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class ValidationFailed(ApplicationError):
    status = 400
    code = "invalid"


class AuthenticationFailed(ApplicationError):
    status = 401
    code = "unauthorized"


class PermissionDenied(ApplicationError):
    status = 403
    code = "forbidden"


class NotFound(ApplicationError):
    status = 404
    code = "not_found"


class PayloadTooLarge(ValidationFailed):
    """A body or file over its size limit (413); a ValidationFailed, so callers that refuse bad input catch it."""

    status = 413
    code = "too_large"


class InvalidTransition(ApplicationError):
    status = 409
    code = "invalid_transition"


class QuotaExceeded(ApplicationError):
    status = 429
    code = "quota_exceeded"

    def __init__(self, message: str, *, retry_after: int = 1, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Unavailable(ApplicationError):
    status = 503
    code = "unavailable"
