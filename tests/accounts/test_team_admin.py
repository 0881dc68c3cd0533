"""Teams in Django admin go through the services: audited, and a member's share above the team's is a form error."""
import pytest
from django.test import Client

from accounts.models import AuditEvent
from accounts.teams.models import Team, TeamMembership

pytestmark = pytest.mark.django_db


def _form(member_pk: int, rpm: str = "", member_rpm: str = "") -> dict:
    return {"name": "vision", "description": "", "requests_per_minute": rpm, "tokens_per_day": "",
            "tokens_per_month": "", "concurrent_requests": "", "monthly_token_budget": "", "allowed_models": "[]",
            "queue_weight": "1",
            "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0", "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000", "memberships-0-user": str(member_pk),
            "memberships-0-is_team_admin": "on", "memberships-0-requests_per_minute": member_rpm,
            "memberships-0-tokens_per_day": "", "memberships-0-concurrent_requests": ""}


def test_an_admin_creates_a_team_with_a_team_admin_in_django_admin(admin_user, member_user):
    client = Client()
    client.force_login(admin_user)
    response = client.post("/admin/accounts/team/add/", _form(member_user.pk, rpm="50", member_rpm="10"))
    assert response.status_code == 302, response.content.decode()[-3000:]
    team = Team.objects.get(name="vision")
    membership = TeamMembership.objects.get(team=team, user=member_user)
    assert membership.is_team_admin and membership.requests_per_minute == 10
    assert {"accounts.team.created", "accounts.team.member_added", "accounts.team.member_limits_changed"} <= set(
        AuditEvent.objects.values_list("action", flat=True))


def test_a_members_share_above_the_team_is_a_form_error_not_a_crash(admin_user, member_user):
    client = Client()
    client.force_login(admin_user)
    client.post("/admin/accounts/team/add/", _form(member_user.pk, rpm="50"))
    team = Team.objects.get(name="vision")
    form = _form(member_user.pk, rpm="50", member_rpm="80")
    membership = TeamMembership.objects.get(team=team)
    form.update({"memberships-INITIAL_FORMS": "1", "memberships-0-id": str(membership.pk),
                 "memberships-0-team": str(team.pk)})
    response = client.post(f"/admin/accounts/team/{team.pk}/change/", form)
    assert response.status_code == 200
    assert "allows at most 50 requests per minute" in response.content.decode()
    assert TeamMembership.objects.get(pk=membership.pk).requests_per_minute is None
