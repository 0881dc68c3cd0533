"""Where the OpenID provider's endpoints are: read once from its discovery document, by issuer URL.

mozilla-django-oidc wants each endpoint as a setting; operators set only PORTAL_OIDC_ISSUER, so the
views and backend here answer those settings from discovery (`oidc_setting`)."""
from __future__ import annotations

import time

from django.conf import settings
from mozilla_django_oidc.utils import import_from_settings

from accounts import clients

# setting mozilla-django-oidc asks for -> field of the discovery document
DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}
RETRY_AFTER_FAILURE_S = 30
_cache: dict[str, tuple[dict, float]] = {}


class SsoNotConfigured(Exception):
    pass


def enabled() -> bool:
    return bool(settings.PORTAL_OIDC_ISSUER and settings.OIDC_RP_CLIENT_ID)


def discovery() -> dict:
    """The issuer's discovery document, cached for the process's life (a failed fetch is retried after 30 s)."""
    issuer = settings.PORTAL_OIDC_ISSUER
    if not enabled():
        raise SsoNotConfigured("Single sign-on is off: set PORTAL_OIDC_ISSUER and PORTAL_OIDC_CLIENT_ID.")
    doc, failed_at = _cache.get(issuer, ({}, 0.0))
    if doc:
        return doc
    if failed_at and time.monotonic() - failed_at < RETRY_AFTER_FAILURE_S:
        raise clients.ProviderUnreachable(f"the provider at {issuer} did not answer a moment ago")
    try:
        doc = clients.discovery_fetch(issuer)
    except clients.ProviderUnreachable:
        _cache[issuer] = ({}, time.monotonic())
        raise
    if doc.get("issuer", "").rstrip("/") != issuer:
        _cache[issuer] = ({}, time.monotonic())
        raise clients.ProviderUnreachable(f"the discovery document names issuer {doc.get('issuer')!r}, not {issuer!r}")
    _cache[issuer] = (doc, 0.0)
    return doc


def oidc_setting(attr: str, *args):
    """mozilla-django-oidc's `get_settings`, with the endpoints taken from discovery."""
    if attr in DISCOVERED:
        return discovery().get(DISCOVERED[attr], *args)
    return import_from_settings(attr, *args)


def end_session_endpoint() -> str | None:
    try:
        return discovery().get("end_session_endpoint")
    except (clients.ProviderUnreachable, SsoNotConfigured):
        return None
