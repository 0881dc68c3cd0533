from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import ApiKeyForm, AuditFilterForm
from accounts.teams import selectors as team_selectors
from sparkportal.exceptions import ApplicationError
from sparkportal.lib.redirects import redirect_next


class LoginView(auth_views.LoginView):
    """Django's login page, offering single sign-on when it is set up and saying why one was refused."""

    def get_context_data(self, **kwargs):
        from accounts.sso import config

        context = super().get_context_data(**kwargs)
        context.update(sso_enabled=config.enabled(), sso_name=settings.PORTAL_OIDC_PROVIDER_NAME,
                       password_break_glass=settings.PORTAL_PASSWORD_LOGIN == "break-glass",
                       sso_refused=self.request.session.pop("sso_refused", None)
                       if self.request.GET.get("sso") == "refused" else None)
        return context


@login_required
def key_list(request):
    everyone = request.GET.get("all") == "1" and request.user.is_portal_admin
    teams = list(team_selectors.team_choices(user=request.user))
    form = ApiKeyForm(request.POST or None, teams=teams)
    created_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            key, created_secret = services.api_key_create(
                owner=request.user, name=form.cleaned_data["name"], scopes=form.scope_list(),
                expires_at=form.cleaned_data.get("expires_at"), ip=services.client_ip(request),
                team_id=form.cleaned_data.get("team"))
            form = ApiKeyForm(teams=teams)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
    keys = selectors.api_key_list_visible(user=request.user, everyone=everyone)
    context = {"form": form, "keys": keys, "created_secret": created_secret, "everyone": everyone}
    template = "accounts/keys.html#key-panel" if request.htmx else "accounts/keys.html"
    return render(request, template, context)


@login_required
@require_POST
def key_revoke(request, key_id: int):
    key = selectors.api_key_get_visible(user=request.user, key_id=key_id)
    services.api_key_revoke(key=key, actor=request.user, ip=services.client_ip(request))
    messages.success(request, f"Key {key.display} ({key.name}) revoked: it stops working at once.")
    return redirect_next(request, "accounts-keys")


@login_required
def audit_list(request):
    selectors.require_admin(request.user)
    form = AuditFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    events = selectors.audit_event_list(user=request.user, **{k: v for k, v in filters.items() if v})
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    return render(request, "accounts/audit.html", {"form": form, "page": page})
