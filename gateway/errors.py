"""OpenAI-shaped errors: {"error": {"message", "type", "param", "code"}} with the right status."""
from __future__ import annotations

import orjson


class GatewayError(Exception):
    def __init__(self, status: int, message: str, *, type: str, code: str, param: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def body(self) -> bytes:
        return orjson.dumps({"error": {"message": self.message, "type": self.type, "param": self.param,
                                       "code": self.code}})

    def headers(self) -> list[tuple[bytes, bytes]]:
        body_headers = [(b"content-type", b"application/json")]
        if self.retry_after is not None:
            body_headers.append((b"retry-after", str(self.retry_after).encode()))
        if self.status == 401:
            body_headers.append((b"www-authenticate", b'Bearer realm="sparkportal"'))
        return body_headers


def bad_request(message: str, *, code: str = "invalid_request", param: str | None = None) -> GatewayError:
    return GatewayError(400, message, type="invalid_request_error", code=code, param=param)


def unauthorized(message: str, *, code: str = "invalid_api_key") -> GatewayError:
    return GatewayError(401, message, type="authentication_error", code=code)


def forbidden(message: str, *, code: str = "model_not_allowed") -> GatewayError:
    return GatewayError(403, message, type="permission_error", code=code, param="model")


def not_found(message: str, *, code: str = "model_not_found", param: str | None = "model") -> GatewayError:
    return GatewayError(404, message, type="not_found_error", code=code, param=param)


def too_many(message: str, *, code: str, retry_after: int) -> GatewayError:
    return GatewayError(429, message, type="rate_limit_error", code=code, retry_after=retry_after)


def unavailable(message: str, *, code: str = "model_not_running", retry_after: int | None = None) -> GatewayError:
    return GatewayError(503, message, type="service_unavailable_error", code=code, retry_after=retry_after)


def bad_gateway(message: str, *, code: str = "upstream_error") -> GatewayError:
    return GatewayError(502, message, type="upstream_error", code=code)
