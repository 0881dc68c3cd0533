"""Team pages: the list, one team (members, this month's tokens against the budget) and team-admin actions."""
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.services import client_ip
from accounts.teams import selectors, services
from accounts.teams.forms import MemberLimitsForm
from sparkportal.exceptions import ApplicationError


def _managed(request, team_id: int):
    """The team if the user administers it; a member gets the 403 page, a stranger the 404."""
    try:
        return selectors.team_get_managed(user=request.user, team_id=team_id)
    except ApplicationError as exc:
        raise PermissionDenied(exc.message) from None


@login_required
def team_list(request):
    teams = selectors.team_list_visible(user=request.user)
    return render(request, "accounts/teams.html", {"teams": teams})


@login_required
def team_detail(request, team_id: int):
    team = selectors.team_get_visible(user=request.user, team_id=team_id)
    manages = selectors.team_may_manage(user=request.user, team=team)
    context = {"team": team, "manages": manages, "usage": selectors.team_usage_month(team=team),
               "memberships": team.memberships.all(),
               "keys": selectors.team_member_keys(team=team).filter(revoked_at__isnull=True) if manages else []}
    return render(request, "accounts/team_detail.html", context)


@login_required
@require_POST
def member_limits(request, team_id: int, user_id: int):
    team = _managed(request, team_id)
    membership = selectors.membership_get(team=team, user_id=user_id)
    form = MemberLimitsForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{field}: {' '.join(errs)}" for field, errs in form.errors.items()))
        return redirect("accounts-team", team_id=team.pk)
    try:
        services.team_member_limits_set(actor=request.user, membership=membership, ip=client_ip(request),
                                        **form.cleaned_data)
        messages.success(request, f"Limits of {membership.user.get_username()} saved: they apply to the next request.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("accounts-team", team_id=team.pk)


@login_required
@require_POST
def member_key_revoke(request, team_id: int, key_id: int):
    team = _managed(request, team_id)
    key = selectors.team_member_key_get(team=team, key_id=key_id)
    services.team_member_key_revoke(actor=request.user, team=team, key=key, ip=client_ip(request))
    messages.success(request, f"Key {key.display} of {key.owner.get_username()} revoked: it stops working at once.")
    return redirect("accounts-team", team_id=team.pk)
