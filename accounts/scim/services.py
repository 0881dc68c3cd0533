"""Provisioning pushed by the identity provider (SCIM 2.0): users created, changed, deactivated; groups.

A deprovisioned user (active false, or deleted) is deactivated by a `save()` of the User row, which bumps
the auth generation (accounts.revocation): their keys are refused on the very next request everywhere.
A delete also revokes the keys, and keeps the account deactivated for the audit trail and the ledger.
Group changes apply the SsoGroupMapping rows at once (accounts.sso.services.groups_apply).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from accounts import services as account_services
from accounts.models import ApiKey, User
from accounts.scim.models import ScimGroup, ScimUser
from accounts.sso import services as sso_services
from accounts.sso.models import SsoIdentity
from sparkportal.exceptions import ApplicationError, ValidationFailed

ACTOR = "scim"


class Conflict(ApplicationError):
    status = 409
    code = "uniqueness"


def _audit(action: str, target: models.Model, details: dict) -> None:
    account_services.audit_record(actor=None, actor_name=ACTOR, action=action, target=target, details=details)


@transaction.atomic
def scim_user_create(*, user_name: str, external_id: str = "", email: str = "", active: bool = True) -> User:
    user_name = (user_name or "").strip()
    if not user_name or len(user_name) > 150:
        raise ValidationFailed("userName is required, at most 150 characters.")
    if User.objects.filter(username__iexact=user_name).exists():
        raise Conflict(f"A user named {user_name!r} exists already.")
    user = User.objects.create_user(username=user_name, email=email, role=settings.PORTAL_OIDC_DEFAULT_ROLE,
                                    is_active=active)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    ScimUser.objects.create(user=user, external_id=external_id)
    _audit("accounts.scim.user_created", user, {"username": user_name, "external_id": external_id,
                                                "active": active})
    return user


@transaction.atomic
def scim_user_update(*, user: User, user_name: str | None = None, external_id: str | None = None,
                     email: str | None = None, active: bool | None = None) -> User:
    """Change the given attributes (None: keep). `active` false deactivates: keys stop on the next request."""
    user = User.objects.select_for_update().get(pk=user.pk)
    link = ScimUser.objects.select_for_update().get(user=user)
    old = {"username": user.username, "email": user.email, "active": user.is_active, "external_id": link.external_id}
    if user_name is not None and user_name.strip() != user.username:
        user_name = user_name.strip()
        if not user_name or User.objects.filter(username__iexact=user_name).exclude(pk=user.pk).exists():
            raise Conflict(f"userName {user_name!r} is empty or taken by another user.")
        user.username = user_name
    if email is not None:
        user.email = email
    if active is not None:
        user.is_active = active
    if external_id is not None:
        link.external_id = external_id
        link.save(update_fields=["external_id", "updated_at"])
    new = {"username": user.username, "email": user.email, "active": user.is_active, "external_id": link.external_id}
    if new != old:
        user.save()  # a save, not an update(): the auth generation moves (accounts.revocation)
        action = ("accounts.scim.user_deactivated" if old["active"] and not user.is_active
                  else "accounts.scim.user_changed")
        _audit(action, user, {"old": old, "new": new})
    return user


@transaction.atomic
def scim_user_delete(*, user: User) -> None:
    """The provider deleted the user: deactivate, revoke every key, drop group memberships; keep the row."""
    scim_user_update(user=user, active=False)
    for key in ApiKey.objects.filter(owner=user, revoked_at__isnull=True):
        account_services.api_key_revoke(key=key, actor=None, reason="user deprovisioned over SCIM")
    for group in user.scim_groups.all():
        group.members.remove(user)
    ScimUser.objects.filter(user=user).update(deleted_at=timezone.now())
    _audit("accounts.scim.user_deleted", user, {"username": user.username})


def _apply_groups(users: list[User]) -> None:
    for user in users:
        identity = SsoIdentity.objects.filter(user=user).first()
        groups = set(user.scim_groups.values_list("display_name", flat=True)) | set(identity.groups if identity
                                                                                   else [])
        sso_services.groups_apply(user=user, groups=sorted(groups))


@transaction.atomic
def scim_group_save(*, group: ScimGroup | None = None, display_name: str | None = None,
                    external_id: str | None = None, members: list[User] | None = None,
                    add: list[User] | None = None, remove: list[User] | None = None) -> ScimGroup:
    """Create or change a group: its name, its whole member list (`members`) or members added and removed."""
    created = group is None
    if created and not (display_name or "").strip():
        raise ValidationFailed("displayName is required.")
    group = ScimGroup() if created else ScimGroup.objects.select_for_update().get(pk=group.pk)
    if display_name is not None and display_name.strip() != group.display_name:
        name = display_name.strip()
        if ScimGroup.objects.filter(display_name=name).exclude(pk=group.pk).exists():
            raise Conflict(f"A group named {name!r} exists already.")
        group.display_name = name
    if external_id is not None:
        group.external_id = external_id
    group.save()
    before = set(group.members.all()) if not created else set()
    after = set(members) if members is not None else (before | set(add or [])) - set(remove or [])
    if after != before:
        group.members.set(after)
    _audit(f"accounts.scim.group_{'created' if created else 'changed'}", group,
           {"name": group.display_name, "added": sorted(u.username for u in after - before),
            "removed": sorted(u.username for u in before - after)})
    _apply_groups(sorted(after ^ before, key=lambda u: u.pk))
    return group


@transaction.atomic
def scim_group_delete(*, group: ScimGroup) -> None:
    members = list(group.members.all())
    _audit("accounts.scim.group_deleted", group, {"name": group.display_name,
                                                  "members": sorted(u.username for u in members)})
    group.delete()
    _apply_groups(members)
