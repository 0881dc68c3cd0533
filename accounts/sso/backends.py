"""Authentication backends: OpenID Connect logins (mozilla-django-oidc) and local passwords."""
from __future__ import annotations

import logging

import jwt
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import SuspiciousOperation
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts import clients
from accounts.services import client_ip
from accounts.sso import config, services

log = logging.getLogger(__name__)


class LocalPasswordBackend(ModelBackend):
    """Django's password check; with PORTAL_PASSWORD_LOGIN=break-glass only local portal admins pass."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is not None and not services.may_use_password(user):
            services.password_login_refusal_record(username=user.get_username(), ip=client_ip(request))
            return None
        return user


class OidcBackend(OIDCAuthenticationBackend):
    """The code flow of mozilla-django-oidc (token request with the PKCE verifier, ID token signature and
    nonce checked against the provider's JWKS); the user comes from accounts.sso.services.sso_login.

    Endpoints are read from discovery when first needed, not at construction: Django builds every backend
    for each password login too, and those must not depend on the provider being up."""

    get_settings = staticmethod(config.oidc_setting)

    def __init__(self, *args, **kwargs) -> None:
        self.UserModel = get_user_model()

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 - the attribute name of the library
        return self.get_settings("OIDC_OP_TOKEN_ENDPOINT")

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str | None:  # noqa: N802
        return self.get_settings("OIDC_OP_USER_ENDPOINT", None)

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return self.get_settings("OIDC_OP_JWKS_ENDPOINT")

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # noqa: N802
        return self.get_settings("OIDC_RP_CLIENT_ID")

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:  # noqa: N802
        return self.get_settings("OIDC_RP_CLIENT_SECRET")

    @property
    def OIDC_RP_SIGN_ALGO(self) -> str:  # noqa: N802
        return self.get_settings("OIDC_RP_SIGN_ALGO", "RS256")

    @property
    def OIDC_RP_IDP_SIGN_KEY(self) -> None:  # noqa: N802 - keys come from the provider's JWKS
        return None

    def authenticate(self, request, **kwargs):
        if request is None or "code" not in request.GET or not config.enabled():
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation, jwt.PyJWTError, clients.ProviderUnreachable,
                ValueError) as exc:
            log.warning("single sign-on login refused: %s", exc)
            self._refuse(f"the provider's answer could not be verified ({type(exc).__name__}: {exc})")
            return None

    def get_or_create_user(self, access_token, id_token, payload):
        """Claims of the verified ID token, completed by the userinfo endpoint (same subject only)."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            if userinfo.get("sub") != payload.get("sub"):
                self._refuse("the userinfo endpoint answered for another subject", claims)
                return None
            claims = {**userinfo, **payload}
        try:
            return services.sso_login(claims=claims, ip=client_ip(self.request))
        except services.SsoRefused as exc:
            self._refuse(str(exc), claims)
            return None

    def _refuse(self, reason: str, claims: dict | None = None) -> None:
        services.sso_refusal_record(reason=reason, claims=claims, ip=client_ip(self.request))
        self.request.session["sso_refused"] = reason[:300]
