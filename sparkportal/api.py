"""The one NinjaAPI. Apps add routers; errors become {"detail": ..., "code": ...}."""
import json

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DataError, IntegrityError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.openapi.docs import Swagger
from ninja.openapi.schema import OpenAPISchema

from accounts.auth import default_auth
from sparkportal.exceptions import ApplicationError, QuotaExceeded
from sparkportal.lib.bounds import OUT_OF_RANGE_MESSAGE, is_out_of_range
from sparkportal.middleware import status_code

_ERROR_SCHEMA = {"type": "object", "required": ["detail", "code"],
                 "properties": {"detail": {"title": "Detail"}, "code": {"type": "string", "title": "Code"}}}


# Every error status the handlers below answer with, and which operations can meet it.
_ERRORS = {
    400: "Bad request: a value the portal refuses, a body it cannot parse or a number out of range",
    401: "Authentication required, or the API key is unknown, revoked or expired",
    403: "The caller's role, or the API key's scopes, do not allow this",
    404: "No such object, or none the caller may see",
    409: "The object's current state does not allow this",
    413: "The request body is too large",
    422: "Validation error: `detail` lists each field to fix",
    503: "Something the answer needs (a node's worker, an engine) is not available now",
}


def _error_statuses(operation: dict) -> list[int]:
    """The shared errors that can reach an operation: input can be refused (400, 422), a body can be too
    large (413), and behind authentication a caller can be refused (401, 403), name something that is
    not there or not theirs (404), act on it in the wrong state (409) or need a worker that is away (503)."""
    statuses = []
    if operation.get("parameters") or operation.get("requestBody"):
        statuses += [400, 422]
    if operation.get("requestBody"):
        statuses.append(413)
    if operation.get("security"):
        statuses += [401, 403, 404, 409, 503]
    return sorted(set(statuses))


class PortalAPI(NinjaAPI):
    def get_openapi_schema(self, **kwargs) -> OpenAPISchema:
        """ninja documents only the statuses a view declares; the exception handlers below answer the
        portal's errors from every operation, so each operation documents those that can reach it."""
        schema = super().get_openapi_schema(**kwargs)
        for operations in schema["paths"].values():
            for operation in operations.values():
                for status in _error_statuses(operation):
                    operation["responses"].setdefault(status, {
                        "description": _ERRORS[status],
                        "content": {"application/json": {"schema": _ERROR_SCHEMA}}})
        return schema


class OfflineSwagger(Swagger):
    """Swagger UI from the swagger-ui-dist npm package: ninja's own page loads it from a CDN unless
    "ninja" is an installed app, and the portal must work without internet."""

    template = "api/docs.html"

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs) -> HttpResponse:
        self.settings["url"] = self.get_openapi_url(api, kwargs)
        context = {"swagger_settings": json.dumps(self.settings), "api": api, "add_csrf": True}
        return render(request, self.template, context)


api = PortalAPI(
    title="Spark Portal API",
    version="1",
    description="Models, servers, benchmarks, classifier and accounts of the portal. "
    "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>` (create keys on the Keys page), "
    "or with the browser session.",
    auth=default_auth(),
    urls_namespace="api",
    docs=OfflineSwagger(),
)


@api.exception_handler(ApplicationError)
def _application_error(request, exc: ApplicationError):
    body = {"detail": exc.message, "code": exc.code, **exc.extra}
    response = api.create_response(request, body, status=exc.status)
    if isinstance(exc, QuotaExceeded):
        response["Retry-After"] = str(exc.retry_after)
    return response


@api.exception_handler(AuthenticationError)
def _auth_error(request, exc):
    return api.create_response(request, {
        "detail": "Authentication required: send `Authorization: Bearer <key>` or `X-API-Key: <key>` "
                  "with a key from the Keys page, or log in.",
        "code": "unauthorized"}, status=401)


@api.exception_handler(ValidationError)
def _validation_error(request, exc: ValidationError):
    return api.create_response(request, {"detail": exc.errors, "code": "validation_error"}, status=422)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    detail = str(exc)
    if detail.startswith("Cannot parse request body"):
        return _error(request, f"{detail}: send a JSON document with `Content-Type: application/json`.",
                      "invalid_body", 400)
    return _error(request, detail, status_code(exc.status_code), exc.status_code)


@api.exception_handler(SuspiciousOperation)
def _suspicious(request, exc: SuspiciousOperation):
    if isinstance(exc, RequestDataTooBig):
        return _error(request, f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes: "
                      "send less.", "too_large", 413)
    return _error(request, str(exc) or "The request was refused.", "bad_request", 400)


@api.exception_handler(OverflowError)
@api.exception_handler(DataError)
@api.exception_handler(IntegrityError)
def _out_of_range(request, exc: Exception):
    if not is_out_of_range(exc):
        raise exc  # a real integrity error is a bug: Django logs it and answers 500
    return _error(request, OUT_OF_RANGE_MESSAGE, "out_of_range", 400)


def _error(request, detail: str, code: str, status: int):
    return api.create_response(request, {"detail": detail, "code": code}, status=status)


@api.exception_handler(Http404)
def _not_found(request, exc):
    return api.create_response(request, {"detail": str(exc) or "Not found.", "code": "not_found"}, status=404)


@api.exception_handler(DjangoPermissionDenied)
def _forbidden(request, exc):
    return api.create_response(request, {"detail": str(exc) or "You may not do this.", "code": "forbidden"},
                               status=403)


api.add_router("/", "sparkportal.api_health.router", tags=["health"])
api.add_router("/accounts/", "accounts.api.router", tags=["accounts"])
api.add_router("/teams/", "accounts.teams.api.router", tags=["teams"])
api.add_router("/sso/", "accounts.sso.api.router", tags=["sso"])
api.add_router("/models/", "models_registry.api.router", tags=["models"])
api.add_router("/servers/", "servers.api.router", tags=["servers"])
api.add_router("/servers/", "servers.metrics.api.router", tags=["servers"])
api.add_router("/benchmarks/", "benchmarks.api.router", tags=["benchmarks"])
api.add_router("/classifier/", "classifier.api.router", tags=["classifier"])
api.add_router("/gateway/", "gateway.api.router", tags=["gateway"])
