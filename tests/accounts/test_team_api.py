"""Teams over the REST API, and the attacks on the team-admin boundary."""
import pytest
from django.test import Client

from accounts import services as account_services
from accounts.models import ApiKey, AuditEvent
from accounts.teams import services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    _key, raw = account_services.api_key_create(owner=user, name=f"api-{user.username}")
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def team(admin_user, member_user):
    lead = UserFactory(username="lena")
    team = services.team_save(actor=admin_user, name="vision", requests_per_minute=60, tokens_per_day=100_000,
                              concurrent_requests=4, monthly_token_budget=1_000_000, allowed_models=["chat-model"])
    services.team_member_add(actor=admin_user, team=team, user=lead, is_team_admin=True)
    services.team_member_add(actor=admin_user, team=team, user=member_user)
    team.lead = lead
    return team


def test_an_admin_creates_a_team_and_adds_members_audited(admin_user, member_user):
    api = _client(admin_user)
    created = api.post("/api/teams/", {"name": "nlp", "requests_per_minute": 50, "monthly_token_budget": 10_000,
                                       "allowed_models": ["chat-model"]}, content_type="application/json")
    assert created.status_code == 201, created.content
    team_id = created.json()["id"]
    added = api.post(f"/api/teams/{team_id}/members", {"username": member_user.username, "is_team_admin": True},
                     content_type="application/json")
    assert added.status_code == 201 and added.json()["is_team_admin"] is True
    got = api.get(f"/api/teams/{team_id}").json()
    assert got["requests_per_minute"] == 50 and [m["username"] for m in got["members"]] == [member_user.username]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"accounts.team.created", "accounts.team.member_added"} <= actions


def test_a_team_name_that_exists_or_a_negative_limit_is_refused_with_what_to_fix(admin_user, team):
    api = _client(admin_user)
    dup = api.post("/api/teams/", {"name": "Vision"}, content_type="application/json")
    assert dup.status_code == 400 and "exists already" in dup.json()["detail"]
    negative = api.post("/api/teams/", {"name": "x", "requests_per_minute": -1}, content_type="application/json")
    assert negative.status_code == 422


def test_a_member_sees_the_team_but_cannot_act_as_team_admin(team, member_user):
    api = _client(member_user)
    assert api.get(f"/api/teams/{team.pk}").status_code == 200
    limits = api.patch(f"/api/teams/{team.pk}/members/{member_user.pk}", {"requests_per_minute": 60},
                       content_type="application/json")
    assert limits.status_code == 403 and limits.json()["code"] == "not_team_admin"
    assert api.get(f"/api/teams/{team.pk}/keys").status_code == 403
    assert api.post(f"/api/teams/{team.pk}/members", {"username": "sam"},
                    content_type="application/json").status_code == 403
    assert api.put(f"/api/teams/{team.pk}", {"name": "mine now"}, content_type="application/json").status_code == 403


def test_a_stranger_does_not_learn_that_the_team_exists(team, stranger):
    api = _client(stranger)
    assert api.get(f"/api/teams/{team.pk}").status_code == 404
    assert api.get("/api/teams/").json()["items"] == []
    assert api.patch(f"/api/teams/{team.pk}/members/{stranger.pk}", {},
                     content_type="application/json").status_code == 404


def test_a_team_admin_cannot_give_a_member_more_than_the_team_has(team, member_user):
    api = _client(team.lead)
    over = api.patch(f"/api/teams/{team.pk}/members/{member_user.pk}", {"requests_per_minute": 61},
                     content_type="application/json")
    assert over.status_code == 400 and over.json()["code"] == "above_team_limit"
    assert "allows at most 60 requests per minute" in over.json()["detail"]
    ok = api.patch(f"/api/teams/{team.pk}/members/{member_user.pk}", {"requests_per_minute": 10,
                                                                      "tokens_per_day": 5000},
                   content_type="application/json")
    assert ok.status_code == 200 and ok.json()["requests_per_minute"] == 10
    assert AuditEvent.objects.filter(action="accounts.team.member_limits_changed").count() == 1


def test_a_team_admin_cannot_raise_the_team_itself_or_add_people(team, stranger):
    api = _client(team.lead)
    assert api.put(f"/api/teams/{team.pk}", {"name": "vision", "requests_per_minute": 10_000},
                   content_type="application/json").status_code == 403
    assert api.post(f"/api/teams/{team.pk}/members", {"username": stranger.username},
                    content_type="application/json").status_code == 403
    team.refresh_from_db()
    assert team.requests_per_minute == 60


def test_a_team_admin_cannot_touch_a_non_member_or_their_keys(team, stranger):
    stranger_key, _raw = account_services.api_key_create(owner=stranger, name="own")
    api = _client(team.lead)
    assert api.patch(f"/api/teams/{team.pk}/members/{stranger.pk}", {"requests_per_minute": 1},
                     content_type="application/json").status_code == 404
    assert api.delete(f"/api/teams/{team.pk}/keys/{stranger_key.pk}").status_code == 404
    assert ApiKey.objects.get(pk=stranger_key.pk).revoked_at is None
    listed = {k["owner"] for k in api.get(f"/api/teams/{team.pk}/keys").json()["items"]}
    assert stranger.username not in listed


def test_a_team_admin_of_one_team_cannot_manage_another(admin_user, team, member_user):
    other = services.team_save(actor=admin_user, name="audio")
    services.team_member_add(actor=admin_user, team=other, user=member_user)
    api = _client(team.lead)
    assert api.patch(f"/api/teams/{other.pk}/members/{member_user.pk}", {"requests_per_minute": 1},
                     content_type="application/json").status_code == 404


def test_a_team_admin_revokes_a_members_key_and_it_stops_working(team, member_user):
    key, raw = account_services.api_key_create(owner=member_user, name="laptop")
    api = _client(team.lead)
    revoked = api.delete(f"/api/teams/{team.pk}/keys/{key.pk}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/accounts/me").status_code == 401
    event = AuditEvent.objects.get(action="accounts.apikey.revoked", target_id=str(key.pk))
    assert event.actor == team.lead and "vision" in event.details["reason"]


def test_team_usage_reports_the_month_against_the_budget(team, member_user):
    usage = _client(member_user).get(f"/api/teams/{team.pk}/usage").json()
    assert usage == {"tokens": 0, "budget": 1_000_000, "percent": 0.0, "warning": False, "exhausted": False,
                     "available": True}


def test_only_members_and_admins_may_follow_a_teams_budget_events(team, member_user, stranger, admin_user):
    from sparkportal import events

    group = f"accounts.team.{team.pk}"
    assert events.may_join(member_user, group) and events.may_join(admin_user, group)
    assert not events.may_join(stranger, group)
    assert not events.may_join(member_user, "accounts.team.x")


def test_only_a_portal_admin_sets_a_teams_queue_weight_within_one_to_one_hundred(admin_user, team):
    admin = _client(admin_user)
    for bad in (0, 101):
        refused = admin.put(f"/api/teams/{team.pk}", {"name": "vision", "queue_weight": bad},
                            content_type="application/json")
        assert refused.status_code == 422 and "queue_weight" in refused.content.decode()
    saved = admin.put(f"/api/teams/{team.pk}", {"name": "vision", "queue_weight": 3}, content_type="application/json")
    assert saved.status_code == 200, saved.content
    assert admin.get(f"/api/teams/{team.pk}").json()["queue_weight"] == 3
    # The team's own admin may not raise the team's share.
    lead = _client(team.lead).put(f"/api/teams/{team.pk}", {"name": "vision", "queue_weight": 100},
                                  content_type="application/json")
    assert lead.status_code == 403
    team.refresh_from_db()
    assert team.queue_weight == 3
    assert AuditEvent.objects.filter(action="accounts.team.changed", details__new__queue_weight=3).exists()
