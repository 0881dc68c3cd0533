"""The one NinjaAPI. Apps add routers; errors become {"detail": ..., "code": ...}."""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from accounts.auth import default_auth
from sparkportal.exceptions import ApplicationError, QuotaExceeded

api = NinjaAPI(
    title="Spark Portal API",
    version="1",
    description="Models, servers, benchmarks, classifier and accounts of the portal. "
    "Authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>` (create keys on the Keys page), "
    "or with the browser session.",
    auth=default_auth(),
    urls_namespace="api",
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


@api.exception_handler(Http404)
def _not_found(request, exc):
    return api.create_response(request, {"detail": str(exc) or "Not found.", "code": "not_found"}, status=404)


@api.exception_handler(DjangoPermissionDenied)
def _forbidden(request, exc):
    return api.create_response(request, {"detail": str(exc) or "You may not do this.", "code": "forbidden"},
                               status=403)


api.add_router("/", "sparkportal.api_health.router", tags=["health"])
api.add_router("/accounts/", "accounts.api.router", tags=["accounts"])
api.add_router("/models/", "models_registry.api.router", tags=["models"])
api.add_router("/servers/", "servers.api.router", tags=["servers"])
api.add_router("/servers/", "servers.metrics.api.router", tags=["servers"])
api.add_router("/benchmarks/", "benchmarks.api.router", tags=["benchmarks"])
api.add_router("/classifier/", "classifier.api.router", tags=["classifier"])
api.add_router("/gateway/", "gateway.api.router", tags=["gateway"])
