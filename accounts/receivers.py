"""Audit of Django's own auth signals (login, failed login, logout).

The receivers that invalidate cached keys on a row change live in accounts.revocation."""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from accounts import services


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    services.audit_record(actor=user, action="accounts.user.logged_in", target=user,
                          ip=services.client_ip(request))


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        services.audit_record(actor=user, action="accounts.user.logged_out", target=user,
                              ip=services.client_ip(request))


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    services.audit_record(actor=None, actor_name=str(credentials.get("username", ""))[:150],
                          action="accounts.user.login_failed", ip=services.client_ip(request),
                          details={"username": str(credentials.get("username", ""))[:150]})

