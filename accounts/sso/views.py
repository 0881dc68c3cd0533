"""The login redirect, the provider's callback and logout (mozilla-django-oidc views, endpoints from discovery)."""
from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, resolve_url
from django.views import View
from mozilla_django_oidc import views as oidc_views

from accounts import clients
from accounts.services import client_ip
from accounts.sso import config, services


class SsoLoginView(oidc_views.OIDCAuthenticationRequestView):
    """Redirects to the provider with state, nonce and a PKCE S256 challenge (kept in the session)."""

    get_settings = staticmethod(config.oidc_setting)

    def __init__(self, *args, **kwargs) -> None:
        View.__init__(self, *args, **kwargs)  # the endpoint is looked up per request, in get()

    def get(self, request):
        if not config.enabled():
            raise Http404("Single sign-on is not set up on this portal.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = self.get_settings("OIDC_OP_AUTHORIZATION_ENDPOINT")
        except clients.ProviderUnreachable as exc:
            messages.error(request, f"The sign-on provider is not answering ({exc}); try again, or tell an admin.")
            return redirect("accounts-login")
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SsoCallbackView(oidc_views.OIDCAuthenticationCallbackView):
    get_settings = staticmethod(config.oidc_setting)

    def get(self, request):
        if request.GET.get("error"):
            reason = f"the provider answered {request.GET['error']}: {request.GET.get('error_description', '')}"
            services.sso_refusal_record(reason=reason.strip(": "), ip=client_ip(request))
            request.session["sso_refused"] = reason[:300]
        return super().get(request)


class SsoLogoutView(oidc_views.OIDCLogoutView):
    """Ends the portal session, then sends the browser to the provider's end_session_endpoint when it has one
    and the session came from it (provider_logout_url)."""


def provider_logout_url(request) -> str:
    """Where the browser goes after the portal's session ends (OIDC RP-Initiated Logout 1.0)."""
    after = request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL))
    id_token = request.session.get("oidc_id_token")
    endpoint = config.end_session_endpoint() if id_token and config.enabled() else None
    if not endpoint:
        return resolve_url(settings.LOGOUT_REDIRECT_URL)
    query = urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": after,
                       "client_id": settings.OIDC_RP_CLIENT_ID})
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
