"""django-ninja authentication: API key as Bearer or X-API-Key, or the browser session."""
from ninja.security import APIKeyHeader, HttpBearer, SessionAuth

from accounts import services
from accounts.models import ApiKey
from sparkportal.exceptions import AuthenticationFailed


def _key_login(request, raw: str) -> ApiKey:
    key = services.api_key_authenticate(raw=raw, cached=True)  # raises AuthenticationFailed with the reason
    if key.gateway_only:
        raise AuthenticationFailed(f"API key {key.display} ({key.name}) works only on the /v1 gateway, not on the "
                                   "REST API: use a key from the Keys page.", code="gateway_only_api_key")
    request.user = key.owner
    request.api_key = key
    return key


class BearerKeyAuth(HttpBearer):
    openapi_description = "Authorization: Bearer sk-sp-…"

    def authenticate(self, request, token):
        return _key_login(request, token)


class HeaderKeyAuth(APIKeyHeader):
    param_name = "X-API-Key"

    def authenticate(self, request, key):
        return _key_login(request, key) if key else None


class PortalSessionAuth(SessionAuth):
    def authenticate(self, request, key):
        user = super().authenticate(request, key)
        if user is not None:
            request.api_key = None
        return user


def default_auth() -> list:
    return [BearerKeyAuth(), HeaderKeyAuth(), PortalSessionAuth()]
