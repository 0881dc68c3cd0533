"""The accounts app's one outbound HTTP door: the OpenID provider's discovery document."""
from __future__ import annotations

import httpx
from django.conf import settings


class ProviderUnreachable(Exception):
    pass


def discovery_fetch(issuer: str) -> dict:
    """GET <issuer>/.well-known/openid-configuration (OpenID Connect Discovery 1.0, section 4)."""
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=settings.OIDC_TIMEOUT, verify=settings.OIDC_VERIFY_SSL)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ProviderUnreachable(f"{url}: {exc}") from exc
