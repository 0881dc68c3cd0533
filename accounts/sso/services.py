"""Single sign-on: a login's claims become a portal user, role and team memberships; mappings; refusals.

At every login the groups claim decides, through the admin-set SsoGroupMapping rows:
1. the role: the highest role any of the user's groups maps to, else PORTAL_OIDC_DEFAULT_ROLE;
2. the teams: exactly the teams the groups map to, among memberships granted by SSO (memberships an
   admin added by hand are left alone). A group removed at the provider thus demotes at the next login.
"""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import services as account_services
from accounts.models import User
from accounts.sso.models import SsoGroupMapping, SsoIdentity
from accounts.teams import services as team_services
from accounts.teams.models import Team, TeamMembership
from sparkportal.exceptions import PermissionDenied, ValidationFailed

ROLE_RANK = {User.Role.MEMBER: 0, User.Role.OPERATOR: 1, User.Role.ADMIN: 2}


class SsoRefused(Exception):
    """A login the portal refuses; the message says why in words an admin can act on."""


def claim_groups(claims: dict) -> list[str]:
    raw = claims.get(settings.PORTAL_OIDC_GROUPS_CLAIM) or []
    if isinstance(raw, str):
        raw = [raw]
    return sorted({str(g) for g in raw if g})


def _username(claims: dict) -> str:
    name = claims.get(settings.PORTAL_OIDC_USERNAME_CLAIM)
    if not isinstance(name, str) or not name.strip():
        raise SsoRefused(f"the provider sent no {settings.PORTAL_OIDC_USERNAME_CLAIM!r} claim: set "
                         "PORTAL_OIDC_USERNAME_CLAIM to a claim it sends (e.g. preferred_username or email)")
    return name.strip()[:150]


@transaction.atomic
def sso_login(*, claims: dict, ip: str | None = None) -> User:
    """The portal user for a verified login (created at the first one), with role and teams synced.

    Raises SsoRefused when the login must not go through."""
    issuer, subject = settings.PORTAL_OIDC_ISSUER, str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("the provider sent no 'sub' claim")
    identity = SsoIdentity.objects.select_related("user").select_for_update().filter(
        issuer=issuer, subject=subject).first()
    if identity is None:
        username = _username(claims)
        existing = User.objects.filter(username__iexact=username).first()
        if existing is not None and _provisioned_unlinked(existing):
            identity = SsoIdentity.objects.create(user=existing, issuer=issuer, subject=subject)
        elif existing is not None:
            raise SsoRefused(f"the username {username!r} belongs to a local account of the portal; an admin must "
                             "rename one of them first")
    if identity is None:
        email = str(claims.get(settings.PORTAL_OIDC_EMAIL_CLAIM) or "")
        user = User.objects.create_user(username=username, email=email, role=settings.PORTAL_OIDC_DEFAULT_ROLE)
        user.set_unusable_password()
        user.save(update_fields=["password"])
        identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        account_services.audit_record(actor=None, actor_name="sso", action="accounts.user.created", target=user,
                                      ip=ip, details={"username": username, "via": "sso", "subject": subject})
    user = identity.user
    if not user.is_active:
        raise SsoRefused(f"the portal account {user.get_username()} is deactivated")
    # Groups the provider pushed over SCIM count like the claim's (providers that send no groups claim).
    groups = sorted(set(claim_groups(claims)) | set(user.scim_groups.values_list("display_name", flat=True)))
    email = str(claims.get(settings.PORTAL_OIDC_EMAIL_CLAIM) or user.email)
    if email != user.email:
        user.email = email
        user.save(update_fields=["email"])
    changes = groups_apply(user=user, groups=groups, ip=ip)
    identity.groups, identity.last_login_at = groups, timezone.now()
    identity.save(update_fields=["groups", "last_login_at"])
    account_services.audit_record(actor=user, action="accounts.sso.logged_in", target=user, ip=ip,
                                  details={"groups": groups, **changes})
    return user


def _provisioned_unlinked(user: User) -> bool:
    """A user the provider created over SCIM and who has not logged in yet: their first login links to them."""
    return hasattr(user, "scim") and not SsoIdentity.objects.filter(user=user).exists()


def groups_apply(*, user: User, groups: list[str], ip: str | None = None) -> dict:
    """Set the user's role and SSO-granted teams from the provider's groups (at login, or pushed over SCIM)."""
    return {"role": _sync_role(user, groups, ip), "teams": _sync_teams(user, groups, ip)}


def _sync_role(user: User, groups: list[str], ip: str | None) -> str:
    roles = [m.role for m in SsoGroupMapping.objects.filter(group__in=groups).exclude(role="")]
    role = max(roles, key=ROLE_RANK.__getitem__) if roles else settings.PORTAL_OIDC_DEFAULT_ROLE
    account_services.user_role_set(user=user, role=role, actor=None, ip=ip)
    return role


def _sync_teams(user: User, groups: list[str], ip: str | None) -> list[str]:
    wanted: dict[int, bool] = {}  # team id -> team admin
    for mapping in SsoGroupMapping.objects.filter(group__in=groups, team__isnull=False):
        wanted[mapping.team_id] = wanted.get(mapping.team_id, False) or mapping.team_admin
    current = {m.team_id: m for m in TeamMembership.objects.select_related("team", "user").filter(user=user)}
    for team_id, membership in current.items():
        if membership.from_sso and team_id not in wanted:
            team_services.team_member_remove(actor=None, membership=membership, ip=ip)
    for team in Team.objects.filter(pk__in=wanted):
        membership = current.get(team.pk)
        if membership is None or membership.from_sso:
            team_services.team_member_add(actor=None, team=team, user=user, is_team_admin=wanted[team.pk],
                                          from_sso=True, ip=ip)
    return sorted(Team.objects.filter(memberships__user=user).values_list("name", flat=True))


def sso_refusal_record(*, reason: str, claims: dict | None = None, ip: str | None = None) -> None:
    claims = claims or {}
    name = str(claims.get(settings.PORTAL_OIDC_USERNAME_CLAIM) or claims.get("sub") or "")[:150]
    account_services.audit_record(actor=None, actor_name=name, action="accounts.sso.refused", ip=ip,
                                  details={"reason": reason[:500], "subject": str(claims.get("sub") or "")})


def password_login_refusal_record(*, username: str, ip: str | None = None) -> None:
    account_services.audit_record(actor=None, actor_name=username[:150], action="accounts.user.password_login_refused",
                                  ip=ip, details={"reason": "PORTAL_PASSWORD_LOGIN=break-glass: only local admins "
                                                            "may log in with a password"})


def may_use_password(user: User) -> bool:
    """With PORTAL_PASSWORD_LOGIN=break-glass only local (never SSO-linked) portal admins use passwords."""
    if settings.PORTAL_PASSWORD_LOGIN == "all":
        return True
    return user.is_portal_admin and not SsoIdentity.objects.filter(user=user).exists()


MAPPING_FIELDS = ("group", "role", "team_id", "team_admin")


@transaction.atomic
def mapping_save(*, actor: User, mapping: SsoGroupMapping | None = None, group: str, role: str = "",
                 team: Team | None = None, team_admin: bool = False, ip: str | None = None) -> SsoGroupMapping:
    """Create or change a group mapping; portal admins only; applies at each member's next login."""
    if not actor.is_portal_admin:
        raise PermissionDenied("Only portal admins may map single sign-on groups.", code="admin_only")
    group = (group or "").strip()
    if not group:
        raise ValidationFailed("Name the group, as the provider sends it in the groups claim.")
    if role and role not in User.Role.values:
        raise ValidationFailed(f"Unknown role {role!r}: use one of {', '.join(User.Role.values)}, or none.")
    if not role and team is None:
        raise ValidationFailed("A mapping grants a role, a team or both: choose at least one.")
    if team_admin and team is None:
        raise ValidationFailed("Team admin needs a team: choose the team the group administers.")
    duplicate = SsoGroupMapping.objects.filter(group=group, team=team).exclude(pk=mapping.pk if mapping else None)
    if team is not None and duplicate.exists():
        raise ValidationFailed(f"Group {group!r} is already mapped to team {team.name}: change that mapping.")
    created = mapping is None
    mapping = SsoGroupMapping() if created else SsoGroupMapping.objects.select_for_update().get(pk=mapping.pk)
    old = None if created else {f: getattr(mapping, f) for f in MAPPING_FIELDS}
    mapping.group, mapping.role, mapping.team, mapping.team_admin = group, role, team, team_admin
    mapping.full_clean()
    mapping.save()
    new = {f: getattr(mapping, f) for f in MAPPING_FIELDS}
    if new != old:
        account_services.audit_record(actor=actor, ip=ip, target=mapping,
                                      action=f"accounts.sso.mapping_{'created' if created else 'changed'}",
                                      details={"old": old, "new": new})
    return mapping


@transaction.atomic
def mapping_delete(*, actor: User, mapping: SsoGroupMapping, ip: str | None = None) -> None:
    if not actor.is_portal_admin:
        raise PermissionDenied("Only portal admins may map single sign-on groups.", code="admin_only")
    account_services.audit_record(actor=actor, action="accounts.sso.mapping_deleted", target=mapping, ip=ip,
                                  details={f: getattr(mapping, f) for f in MAPPING_FIELDS})
    mapping.delete()
