"""A key is charged to one of its owner's teams, chosen at creation in the API, the CLI and the Keys page;
a team the owner is not in is refused everywhere, and no key is made."""
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts import services as account_services
from accounts.models import ApiKey, AuditEvent
from accounts.teams import selectors, services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams(admin_user, member_user):
    """mia is in red and blue; green is someone else's."""
    red = services.team_save(actor=admin_user, name="red")
    blue = services.team_save(actor=admin_user, name="blue")
    green = services.team_save(actor=admin_user, name="green")
    for team in (red, blue):
        services.team_member_add(actor=admin_user, team=team, user=member_user)
    services.team_member_add(actor=admin_user, team=green, user=UserFactory(username="gus"))
    return red, blue, green


def _api(user) -> Client:
    _key, raw = account_services.api_key_create(owner=user, name=f"api-{user.username}")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def test_the_api_binds_a_key_to_one_of_the_owners_teams_and_audits_it(member_user, teams):
    red, _blue, _green = teams
    created = _api(member_user).post("/api/accounts/keys", {"name": "ci", "team_id": red.pk},
                                     content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["team_id"] == red.pk and created.json()["team"] == "red"
    key = ApiKey.objects.get(name="ci")
    assert key.team == red
    assert AuditEvent.objects.get(action="accounts.apikey.created", target_id=str(key.pk)).details["team"] == "red"
    assert selectors.team_charged(user=member_user, key=key) == red


def test_the_api_refuses_a_team_the_owner_is_not_in_or_that_does_not_exist(member_user, teams):
    _red, _blue, green = teams
    api = _api(member_user)
    for team_id in (green.pk, 999_999, 2**70):
        refused = api.post("/api/accounts/keys", {"name": "sneak", "team_id": team_id}, content_type="application/json")
        assert refused.status_code == 400
        assert f"mia is not a member of team {team_id}" in refused.json()["detail"]
    assert not ApiKey.objects.filter(name="sneak").exists()


def test_the_cli_takes_a_team_by_name_and_refuses_one_the_user_is_not_in(member_user, teams):
    out = StringIO()
    call_command("apikey", "create", "mia", "--name", "job", "--team", "blue", stdout=out)
    assert ApiKey.objects.get(name="job").team.name == "blue"
    listed = StringIO()
    call_command("apikey", "list", "--user", "mia", stdout=listed)
    assert [line.split()[3] for line in listed.getvalue().splitlines() if " job " in line] == ["blue"]
    with pytest.raises(CommandError, match="mia is not a member of team"):
        call_command("apikey", "create", "mia", "--name", "sneak", "--team", "green", stdout=StringIO())
    with pytest.raises(CommandError, match="No team 'nope'"):
        call_command("apikey", "create", "mia", "--name", "sneak", "--team", "nope", stdout=StringIO())
    assert not ApiKey.objects.filter(name="sneak").exists()


def test_the_keys_page_offers_only_the_users_teams_and_refuses_a_forged_one(client, member_user, teams):
    red, blue, green = teams
    client.force_login(member_user)
    page = client.get("/accounts/keys/").content.decode()
    assert f'<option value="{red.pk}">red</option>' in page and f'<option value="{blue.pk}">blue</option>' in page
    assert "green" not in page
    forged = client.post("/accounts/keys/", {"name": "sneak", "team": str(green.pk)})
    assert forged.status_code == 200 and "Select a valid choice" in forged.content.decode()
    assert not ApiKey.objects.filter(name="sneak").exists()
    client.post("/accounts/keys/", {"name": "chat-tool", "team": str(blue.pk)})
    assert ApiKey.objects.get(name="chat-tool").team == blue


def test_the_charging_rule(member_user, teams, admin_user):
    red, blue, green = teams
    assert selectors.team_charged(user=member_user) is None  # two teams, no pick: personal
    assert selectors.team_charged(user=member_user, team_id=blue.pk) == blue
    loner = UserFactory(username="lou")
    services.team_member_add(actor=admin_user, team=green, user=loner)
    assert selectors.team_charged(user=loner) == green  # the only team
    assert selectors.team_charged(user=UserFactory(username="nob")) is None


def test_django_admin_shows_the_team_of_a_key_but_cannot_move_it(client, admin_user, member_user, teams):
    red, _blue, green = teams
    key, _raw = account_services.api_key_create(owner=member_user, name="bound", team_id=red.pk)
    client.force_login(admin_user)
    assert client.get(f"/admin/accounts/apikey/?team__id__exact={red.pk}").status_code == 200
    saved = client.post(f"/admin/accounts/apikey/{key.pk}/change/",
                        {"scopes": "[]", "expires_at_0": "", "expires_at_1": "", "team": str(green.pk)})
    assert saved.status_code == 302
    key.refresh_from_db()
    assert key.team == red
