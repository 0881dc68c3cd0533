"""Changes to teams: every one validated, audited and effective on the next gateway request.

Team rows and memberships bump the auth generation when saved or deleted (accounts.revocation), so a
cached caller is reloaded with its new teams and limits at once.
"""
from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts import services as account_services
from accounts.models import ApiKey, User
from accounts.teams import selectors
from accounts.teams.models import Team, TeamMembership
from sparkportal import events
from sparkportal.exceptions import PermissionDenied, ValidationFailed

TEAM_LIMIT_FIELDS = ("requests_per_minute", "tokens_per_day", "tokens_per_month", "concurrent_requests",
                     "monthly_token_budget")
MEMBER_FIELDS = ("requests_per_minute", "tokens_per_day", "concurrent_requests")
TEAM_FIELDS = ("name", "description", *TEAM_LIMIT_FIELDS, "allowed_models", "queue_weight")
LABELS = {"requests_per_minute": "requests per minute", "tokens_per_day": "tokens per day",
          "tokens_per_month": "tokens per month", "concurrent_requests": "concurrent requests",
          "monthly_token_budget": "monthly token budget"}


def _require_portal_admin(actor: User, what: str) -> None:
    if not actor.is_portal_admin:
        raise PermissionDenied(f"Only portal admins may {what}: ask an admin.", code="admin_only")


def _check_non_negative(values: dict) -> None:
    for field, value in values.items():
        if field in LABELS and value is not None and value < 0:
            raise ValidationFailed(f"The team's {LABELS[field]} cannot be negative: leave it empty for no limit.")


def _state(team: Team) -> dict:
    return {f: getattr(team, f) for f in TEAM_FIELDS}


@transaction.atomic
def team_save(*, actor: User, team: Team | None = None, name: str, description: str = "",
              requests_per_minute: int | None = None, tokens_per_day: int | None = None,
              tokens_per_month: int | None = None, concurrent_requests: int | None = None,
              monthly_token_budget: int | None = None, allowed_models: list[str] | None = None,
              queue_weight: int = 1, ip: str | None = None) -> Team:
    """Create a team (team None) or change one; portal admins only. `queue_weight` (1 to 100) multiplies its
    members' shares of a saturated model (gateway.admission.weights)."""
    _require_portal_admin(actor, "create or change teams")
    values = {"name": (name or "").strip(), "description": (description or "").strip(),
              "requests_per_minute": requests_per_minute, "tokens_per_day": tokens_per_day,
              "tokens_per_month": tokens_per_month, "concurrent_requests": concurrent_requests,
              "monthly_token_budget": monthly_token_budget,
              "allowed_models": sorted({m.strip() for m in (allowed_models or []) if m and m.strip()}),
              "queue_weight": queue_weight}
    if not values["name"]:
        raise ValidationFailed("Give the team a name.")
    if not 1 <= queue_weight <= 100:
        raise ValidationFailed(f"A team's queue weight is 1 to 100, not {queue_weight}: 1 is an ordinary share.")
    _check_non_negative(values)
    if Team.objects.filter(name__iexact=values["name"]).exclude(pk=team.pk if team else None).exists():
        raise ValidationFailed(f"A team named {values['name']!r} exists already: choose another name.")
    created = team is None
    team = Team() if created else Team.objects.select_for_update().get(pk=team.pk)
    old = None if created else _state(team)
    for field, value in values.items():
        setattr(team, field, value)
    team.full_clean(exclude=["members"])
    team.save()
    if old != _state(team):
        account_services.audit_record(actor=actor, action=f"accounts.team.{'created' if created else 'changed'}",
                                      target=team, ip=ip, details={"old": old, "new": _state(team)})
    return team


@transaction.atomic
def team_delete(*, actor: User, team: Team, ip: str | None = None) -> None:
    _require_portal_admin(actor, "delete teams")
    account_services.audit_record(actor=actor, action="accounts.team.deleted", target=team, ip=ip,
                                  details={"name": team.name, "members": team.memberships.count()})
    team.delete()


@transaction.atomic
def team_member_add(*, actor: User | None, team: Team, user: User, is_team_admin: bool = False,
                    from_sso: bool = False, ip: str | None = None) -> TeamMembership:
    """Add a user (or change their team-admin flag); portal admins only (and SSO group mappings, actor None).

    A team admin cannot add people: a team's limits and model list bind its members, so adding a stranger
    would restrict someone outside the admin's reach."""
    if actor is not None:
        _require_portal_admin(actor, "add members to teams")
    membership = TeamMembership.objects.select_for_update().filter(team=team, user=user).first()
    if membership is None:
        try:
            with transaction.atomic():
                membership = TeamMembership.objects.create(team=team, user=user, is_team_admin=is_team_admin,
                                                           from_sso=from_sso)
        except IntegrityError:
            raise ValidationFailed(f"{user.get_username()} was just added to team {team.name} by someone else: "
                                   "reload and check.") from None
        account_services.audit_record(actor=actor, actor_name="" if actor else "sso", ip=ip,
                                      action="accounts.team.member_added", target=team,
                                      details={"user": user.get_username(), "team_admin": is_team_admin,
                                               "from_sso": from_sso})
    elif membership.is_team_admin != is_team_admin or membership.from_sso != from_sso:
        old = membership.is_team_admin
        membership.is_team_admin, membership.from_sso = is_team_admin, from_sso
        membership.save(update_fields=["is_team_admin", "from_sso"])
        account_services.audit_record(actor=actor, actor_name="" if actor else "sso", ip=ip,
                                      action="accounts.team.member_changed", target=team,
                                      details={"user": user.get_username(), "team_admin": {"old": old,
                                                                                           "new": is_team_admin}})
    return membership


@transaction.atomic
def team_member_remove(*, actor: User | None, membership: TeamMembership, ip: str | None = None) -> None:
    if actor is not None:
        _require_portal_admin(actor, "remove members from teams")
    account_services.audit_record(actor=actor, actor_name="" if actor else "sso", ip=ip,
                                  action="accounts.team.member_removed", target=membership.team,
                                  details={"user": membership.user.get_username()})
    membership.delete()


@transaction.atomic
def team_member_limits_set(*, actor: User, membership: TeamMembership, requests_per_minute: int | None,
                           tokens_per_day: int | None, concurrent_requests: int | None,
                           ip: str | None = None) -> TeamMembership:
    """A team admin narrows one member's share of the team; never above the team's own limits."""
    team = membership.team
    if not selectors.team_may_manage(user=actor, team=team):
        raise PermissionDenied(f"Only the admins of team {team.name} may set its members' limits.",
                               code="not_team_admin")
    wanted = {"requests_per_minute": requests_per_minute, "tokens_per_day": tokens_per_day,
              "concurrent_requests": concurrent_requests}
    member_limits_check(team=team, wanted=wanted)
    membership = TeamMembership.objects.select_for_update().get(pk=membership.pk)
    old = {f: getattr(membership, f) for f in wanted}
    if old != wanted:
        for field, value in wanted.items():
            setattr(membership, field, value)
        membership.save(update_fields=list(wanted))
        account_services.audit_record(actor=actor, action="accounts.team.member_limits_changed", target=team, ip=ip,
                                      details={"user": membership.user.get_username(), "old": old, "new": wanted})
    return membership


def member_limits_check(*, team: Team, wanted: dict[str, int | None]) -> None:
    """A member's limits are at most the team's: a team admin hands out shares, never more than the whole."""
    _check_non_negative(wanted)
    for field, value in wanted.items():
        ceiling = getattr(team, field)
        if ceiling is not None and value is not None and value > ceiling:
            raise ValidationFailed(
                f"Team {team.name} allows at most {ceiling} {LABELS[field]}, so a member's limit must be at most "
                f"{ceiling}; {value} is above it.", code="above_team_limit")


def team_member_key_revoke(*, actor: User, team: Team, key: ApiKey, ip: str | None = None) -> ApiKey:
    """A team admin revokes a member's key (the selector has checked that the owner is a member)."""
    if not selectors.team_may_manage(user=actor, team=team):
        raise PermissionDenied(f"Only the admins of team {team.name} may revoke its members' keys.",
                               code="not_team_admin")
    return account_services.api_key_revoke(key=key, actor=actor, ip=ip, reason=f"by an admin of team {team.name}")


def team_group(team_id: int) -> str:
    return f"accounts.team.{team_id}"


def team_budget_crossed(*, team_id: int, exhausted: bool, total: int) -> None:
    """A team's month total reached 80% or 100% of its budget (once per month, decided in Redis): audit, tell."""
    team = Team.objects.filter(pk=team_id).first()
    if team is None or not team.monthly_token_budget:
        return
    level = "exhausted" if exhausted else "warning"
    data = {"team_id": team.pk, "team": team.name, "tokens": total, "budget": team.monthly_token_budget,
            "percent": round(100 * total / team.monthly_token_budget, 1), "level": level}
    account_services.audit_record(actor=None, actor_name="system", action=f"accounts.team.budget_{level}",
                                  target=team, details=data)
    transaction.on_commit(lambda: events.publish(team_group(team.pk), f"team.budget_{level}", data))
