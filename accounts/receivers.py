"""Audit of Django's own auth signals (login, failed login, logout)."""
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from accounts import keycache, services
from accounts.models import ApiKey, Quota, User


@receiver(post_save, sender=User)
def _user_saved(sender, instance, created, **kwargs):
    # A deactivated owner or a changed role must take effect on cached keys at once.
    update_fields = kwargs.get("update_fields") or ()
    if not created and set(update_fields) != {"last_login"}:
        transaction.on_commit(keycache.publish_invalidation)


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


def _bump_auth_generation(**kwargs) -> None:
    # Gateways cache keys, owners and quotas in memory; a bump after commit makes every
    # process reload them on its next request (revocation and quota changes apply at once).
    from django.db import transaction

    from accounts import limits

    update_fields = kwargs.get("update_fields")
    if update_fields and set(update_fields) <= {"last_login", "last_used_at"}:
        return
    transaction.on_commit(limits.auth_generation_bump)


for _model in (ApiKey, User, Quota):
    post_save.connect(_bump_auth_generation, sender=_model, dispatch_uid=f"auth-gen-save-{_model.__name__}")
    post_delete.connect(_bump_auth_generation, sender=_model, dispatch_uid=f"auth-gen-delete-{_model.__name__}")
