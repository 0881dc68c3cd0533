from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views
from accounts.sso import views as sso_views
from accounts.teams import views as team_views

urlpatterns = [
    path("login/", views.LoginView.as_view(template_name="accounts/login.html", redirect_authenticated_user=True),
         name="accounts-login"),
    path("logout/", sso_views.SsoLogoutView.as_view(), name="accounts-logout"),
    path("sso/login/", sso_views.SsoLoginView.as_view(), name="accounts-sso-login"),
    path("sso/callback/", sso_views.SsoCallbackView.as_view(), name="accounts-sso-callback"),
    path("password/", auth_views.PasswordChangeView.as_view(template_name="accounts/password_change.html",
                                                             success_url="/accounts/password/done/"),
         name="accounts-password-change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name="accounts/password_change_done.html"), name="password_change_done"),
    path("keys/", views.key_list, name="accounts-keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="accounts-key-revoke"),
    path("audit/", views.audit_list, name="accounts-audit"),
    path("teams/", team_views.team_list, name="accounts-teams"),
    path("teams/<int:team_id>/", team_views.team_detail, name="accounts-team"),
    path("teams/<int:team_id>/members/<int:user_id>/limits/", team_views.member_limits,
         name="accounts-team-member-limits"),
    path("teams/<int:team_id>/keys/<int:key_id>/revoke/", team_views.member_key_revoke,
         name="accounts-team-key-revoke"),
]
