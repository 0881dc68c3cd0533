"""Errors under /api/ that no ninja handler shaped (no such route, a method the route lacks, a crash)
are Django's HTML or plain-text pages; API clients parse JSON, so they get `{detail, code}` instead."""
from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

from sparkportal.lib.bounds import DB_INT_MAX, DB_INT_MIN, OUT_OF_RANGE_MESSAGE


def status_code(status: int) -> str:
    """`not_found` for 404: the `code` of an error that has no more specific one."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _detail(request: HttpRequest, response: HttpResponse) -> str:
    if response.status_code == 404:
        return f"There is no API endpoint {request.method} {request.path}: see /api/docs."
    if response.status_code == 405:
        return f"{request.method} is not allowed on {request.path}; use {response.get('Allow', 'another method')}."
    if response.status_code >= 500:
        return "The portal failed to answer this request; the error is in its log."
    try:
        return HTTPStatus(response.status_code).phrase
    except ValueError:
        return "The request failed."


class ApiErrorsAsJsonMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (request.path.startswith("/api/") and response.status_code >= 400 and not response.streaming
                and not response.get("Content-Type", "").startswith("application/json")):
            return self._as_json(request, response)
        return response

    def process_view(self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict
                     ) -> HttpResponse | None:
        """An id in an API path past 64 bits: SQLite refuses to bind it and PostgreSQL quietly finds nothing,
        so answer the same 400 on both before any query runs."""
        if request.path.startswith("/api/") and any(_out_of_range(v) for v in view_kwargs.values()):
            return JsonResponse({"detail": OUT_OF_RANGE_MESSAGE, "code": "out_of_range"}, status=400)
        return None

    def _as_json(self, request: HttpRequest, response: HttpResponse) -> JsonResponse:
        body = {"detail": _detail(request, response), "code": status_code(response.status_code)}
        replacement = JsonResponse(body, status=response.status_code)
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                replacement[header] = response[header]
        return replacement


def _out_of_range(value: object) -> bool:
    if isinstance(value, str) and value.lstrip("-").isdigit():
        value = int(value)
    return isinstance(value, int) and not DB_INT_MIN <= value <= DB_INT_MAX

