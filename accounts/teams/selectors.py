"""Reads about teams: who sees which team, who administers it, and what the gateway counts per member."""
from __future__ import annotations

import logging

import redis
from django.db.models import Prefetch, QuerySet
from django.http import Http404

from accounts import limits
from accounts.models import ApiKey, User
from accounts.teams.models import Team, TeamMembership
from sparkportal.exceptions import AuthenticationFailed, PermissionDenied

log = logging.getLogger(__name__)

MEMBER_LIMIT_FIELDS = ("requests_per_minute", "tokens_per_day", "concurrent_requests")


def team_list_visible(*, user: User) -> QuerySet[Team]:
    """Admins see every team; everyone else the teams they belong to."""
    qs = Team.objects.prefetch_related(
        Prefetch("memberships", queryset=TeamMembership.objects.select_related("user")))
    return qs if user.is_portal_admin else qs.filter(memberships__user=user).distinct()


def team_get_visible(*, user: User, team_id: int) -> Team:
    """A team the user may see; any other is a 404 (its existence is not disclosed)."""
    team = team_list_visible(user=user).filter(pk=team_id).first()
    if team is None:
        raise Http404("No such team among yours.")
    return team


def team_may_manage(*, user: User, team: Team) -> bool:
    return user.is_portal_admin or TeamMembership.objects.filter(team=team, user=user, is_team_admin=True).exists()


def team_get_managed(*, user: User, team_id: int) -> Team:
    """A team the user administers (portal admin or team admin); a member gets a 403, a stranger a 404."""
    team = team_get_visible(user=user, team_id=team_id)
    if not team_may_manage(user=user, team=team):
        raise PermissionDenied(f"Only the admins of team {team.name} may do this: ask one of them.",
                               code="not_team_admin")
    return team


def membership_get(*, team: Team, user_id: int) -> TeamMembership:
    """A member of this team; anyone else is a 404, so a team admin learns nothing about non-members."""
    membership = TeamMembership.objects.select_related("user", "team").filter(team=team, user_id=user_id).first()
    if membership is None:
        raise Http404(f"No such member in team {team.name}.")
    return membership


def team_member_keys(*, team: Team) -> QuerySet[ApiKey]:
    return ApiKey.objects.select_related("owner", "team").filter(owner__team_memberships__team=team).order_by(
        "owner__username", "revoked_at", "-created_at")


def team_member_key_get(*, team: Team, key_id: int) -> ApiKey:
    key = team_member_keys(team=team).filter(pk=key_id).first()
    if key is None:
        raise Http404(f"No such API key among the keys of team {team.name}'s members.")
    return key


def _limit(value: int | None) -> int:
    return limits.UNLIMITED if value is None else int(value)


def team_limits(*, team: Team) -> limits.TeamLimits:
    """What the quota script counts for a team (accounts.limits)."""
    return limits.TeamLimits(
        team_id=team.pk, name=team.name, requests_per_minute=_limit(team.requests_per_minute),
        tokens_per_day=_limit(team.tokens_per_day), tokens_per_month=_limit(team.tokens_per_month),
        concurrent_requests=_limit(team.concurrent_requests), monthly_token_budget=_limit(team.monthly_token_budget),
        queue_weight=team.queue_weight)


def team_charged(*, user: User, team_id: int | None = None, key: ApiKey | None = None) -> Team | None:
    """The one team a request of this user is charged to (its quotas, budget and ledger rows).

    The rule: the team the key is bound to, or the team picked on the chat page (`team_id`); else the
    user's only team when they belong to exactly one; else none (personal). A key bound to a team its
    owner has left, or a picked team the user is not in, is refused rather than charged elsewhere.
    Raises AuthenticationFailed saying why."""
    teams = {t.pk: t for t in Team.objects.filter(memberships__user=user)}
    wanted = key.team_id if key is not None and key.team_id is not None else team_id
    if wanted is None:
        return next(iter(teams.values())) if len(teams) == 1 else None
    if wanted in teams:
        return teams[wanted]
    if key is not None and key.team_id is not None:
        raise AuthenticationFailed(
            f"API key {key.prefix}… is charged to team {key.team.name}, which {user.get_username()} no longer "
            "belongs to: create a new key on the Keys page (or ask a team admin to add you back).",
            code="key_team_left")
    raise AuthenticationFailed(f"You are not a member of team {team_id}: pick one of your teams.",
                               code="team_not_yours")


def team_choices(*, user: User) -> QuerySet[Team]:
    """The teams a user may charge a key or a chat to."""
    return Team.objects.filter(memberships__user=user).order_by("name")


def member_limits_for_user(*, user: User, team: Team | None) -> dict[str, int | None]:
    """The share a team admin gave this user in the team the request is charged to (None: no such limit).
    A team's admins limit their members' draw on that team only, not requests charged elsewhere."""
    membership = TeamMembership.objects.filter(user=user, team=team).only(*MEMBER_LIMIT_FIELDS).first() \
        if team is not None else None
    return {field: getattr(membership, field) if membership else None for field in MEMBER_LIMIT_FIELDS}


def team_model_rules(*, user: User) -> tuple[tuple[str, frozenset[str]], ...]:
    """(team name, models it allows) for each of the user's teams that restricts models: every one must allow."""
    return tuple((t.name, frozenset(t.allowed_models))
                 for t in Team.objects.filter(memberships__user=user).order_by("pk") if t.allowed_models)


def team_usage_month(*, team: Team) -> dict:
    """This month's tokens of a team (from the quota counters) against its budget. The counters live in
    Redis: while it is unreachable the figures are None and `available` is False, so pages still render."""
    budget = team.monthly_token_budget
    try:
        used = limits.team_tokens_this_month(team.pk)
    except redis.RedisError:
        log.warning("the token counters of team %s are unreadable", team.pk, exc_info=True)
        return {"tokens": None, "budget": budget, "percent": None, "warning": False, "exhausted": False,
                "available": False}
    percent = round(100 * used / budget, 1) if budget else None
    return {"tokens": used, "budget": budget, "percent": percent,
            "warning": percent is not None and percent >= limits.BUDGET_WARN_PERCENT,
            "exhausted": percent is not None and percent >= 100, "available": True}


def budget_banners(*, user: User) -> list[dict]:
    """Teams of the user at or past the budget warning level, for the banner on every page."""
    banners = []
    for team in Team.objects.filter(memberships__user=user, monthly_token_budget__isnull=False):
        usage = team_usage_month(team=team)
        if usage["warning"]:
            banners.append({"team": team, **usage})
    return banners
