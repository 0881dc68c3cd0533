"""Audit of Django's own auth signals (login, failed login, logout).

The receivers that invalidate cached keys on a row change live in accounts.revocation."""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts import services
from accounts.models import User
from sparkportal import events


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    services.audit_record(actor=user, action="accounts.user.logged_in", target=user,
                          ip=services.client_ip(request))


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        services.audit_record(actor=user, action="accounts.user.logged_out", target=user,
                              ip=services.client_ip(request))
        # Sent before Django flushes the session, so it names the session whose sockets must close.
        events.socket_control_send(user.pk, "session.ended", session_key=request.session.session_key)


@receiver(post_save, sender=User)
def _user_changed(sender, instance: User, created: bool = False, update_fields=None, **kwargs):
    if created or (update_fields and set(update_fields) <= {"last_login"}):
        return
    transaction.on_commit(lambda: events.socket_control_send(instance.pk, "auth.changed"))


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    services.audit_record(actor=None, actor_name=str(credentials.get("username", ""))[:150],
                          action="accounts.user.login_failed", ip=services.client_ip(request),
                          details={"username": str(credentials.get("username", ""))[:150]})

