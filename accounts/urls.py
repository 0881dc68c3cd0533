from django.contrib.auth import views as auth_views
from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html", redirect_authenticated_user=True),
         name="accounts-login"),
    path("logout/", auth_views.LogoutView.as_view(), name="accounts-logout"),
    path("password/", auth_views.PasswordChangeView.as_view(template_name="accounts/password_change.html",
                                                             success_url="/accounts/password/done/"),
         name="accounts-password-change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name="accounts/password_change_done.html"), name="password_change_done"),
    path("keys/", views.key_list, name="accounts-keys"),
    path("keys/<int:key_id>/revoke/", views.key_revoke, name="accounts-key-revoke"),
    path("audit/", views.audit_list, name="accounts-audit"),
]
