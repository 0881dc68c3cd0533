"""Group mappings over the API (admins only, validated, audited) and the sync rules of a login."""
import pytest
from django.test import Client, override_settings

from accounts import services as account_services
from accounts.models import AuditEvent
from accounts.sso import services
from accounts.teams import services as team_services
from accounts.teams.models import TeamMembership
from sparkportal.exceptions import PermissionDenied

pytestmark = pytest.mark.django_db
ISSUER = "https://idp.example.test"


def _client(user) -> Client:
    _key, raw = account_services.api_key_create(owner=user, name=f"api-{user.username}")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def test_an_admin_maps_a_group_to_a_role_and_a_team(admin_user):
    team = team_services.team_save(actor=admin_user, name="vision")
    api = _client(admin_user)
    created = api.post("/api/sso/mappings", {"group": "ml", "role": "operator", "team_id": team.pk},
                       content_type="application/json")
    assert created.status_code == 201 and created.json()["team"] == "vision"
    assert api.get("/api/sso/mappings").json()["items"][0]["group"] == "ml"
    assert api.delete(f"/api/sso/mappings/{created.json()['id']}").status_code == 204
    assert {"accounts.sso.mapping_created", "accounts.sso.mapping_deleted"} <= set(
        AuditEvent.objects.values_list("action", flat=True))


def test_a_mapping_that_grants_nothing_or_an_unknown_role_says_what_to_fix(admin_user):
    api = _client(admin_user)
    empty = api.post("/api/sso/mappings", {"group": "ml"}, content_type="application/json")
    assert empty.status_code == 400 and "grants a role, a team or both" in empty.json()["detail"]
    bad = api.post("/api/sso/mappings", {"group": "ml", "role": "root"}, content_type="application/json")
    assert bad.status_code == 400 and "Unknown role 'root'" in bad.json()["detail"]


def test_only_admins_map_groups(member_user, operator_user):
    for user in (member_user, operator_user):
        api = _client(user)
        assert api.get("/api/sso/mappings").status_code == 403
        assert api.post("/api/sso/mappings", {"group": "ml", "role": "admin"},
                        content_type="application/json").status_code == 403
    with pytest.raises(PermissionDenied):
        services.mapping_save(actor=member_user, group="ml", role="admin")


@override_settings(PORTAL_OIDC_ISSUER=ISSUER)
def test_the_highest_mapped_role_wins_and_hand_added_memberships_are_left_alone(admin_user):
    sso_team = team_services.team_save(actor=admin_user, name="sso-team")
    hand_team = team_services.team_save(actor=admin_user, name="hand-team")
    services.mapping_save(actor=admin_user, group="a", role="member", team=sso_team)
    services.mapping_save(actor=admin_user, group="b", role="admin")
    claims = {"sub": "s-1", "preferred_username": "zoe", "email": "z@example.test", "groups": ["a", "b"]}
    zoe = services.sso_login(claims=claims)
    assert zoe.role == "admin"
    team_services.team_member_add(actor=admin_user, team=hand_team, user=zoe)
    zoe = services.sso_login(claims={**claims, "groups": []})
    assert zoe.role == "member"  # PORTAL_OIDC_DEFAULT_ROLE
    assert list(TeamMembership.objects.filter(user=zoe).values_list("team__name", flat=True)) == ["hand-team"]


@override_settings(PORTAL_OIDC_ISSUER=ISSUER)
def test_a_deactivated_user_or_a_login_without_a_username_is_refused(admin_user):
    user = services.sso_login(claims={"sub": "s-2", "preferred_username": "yan"})
    user.is_active = False
    user.save()
    with pytest.raises(services.SsoRefused, match="deactivated"):
        services.sso_login(claims={"sub": "s-2", "preferred_username": "yan"})
    with pytest.raises(services.SsoRefused, match="no 'preferred_username' claim"):
        services.sso_login(claims={"sub": "s-3"})


def test_sso_pages_are_a_404_when_sso_is_off():
    assert Client().get("/accounts/sso/login/").status_code == 404
    assert "sso-login" not in Client().get("/accounts/login/").content.decode()
