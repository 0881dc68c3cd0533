"""A request is charged to exactly one team: the key's, the chat page's pick, or the user's only team."""
import asyncio
import csv
import io
import time
from contextlib import contextmanager

import httpx
import pytest

from accounts.services import PREFIX_LEN
from tests.conftest import login
from tests.factories import UserFactory
from tests.gateway.test_team_quotas import CHAT, _fire

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


def _teams(portal, members, *specs):
    """One team per spec (its limits), every member in each; returns the teams."""
    from accounts.teams import services

    with portal.db():
        admin = UserFactory(username=f"root{time.monotonic_ns()}", role="admin")
        teams = []
        for limits in specs:
            team = services.team_save(actor=admin, name=f"team-{time.monotonic_ns()}", **limits)
            for user in members:
                services.team_member_add(actor=admin, team=team, user=user)
            teams.append(team)
    return teams


def _key(portal, user, team=None, name="bound"):
    from accounts import services

    with portal.db():
        _key, raw = services.api_key_create(owner=user, name=name, team_id=team.pk if team else None)
    return raw


def _statuses(portal, raw, n):
    return [r.status_code for r in asyncio.run(_fire(portal.url, [(raw, CHAT)] * n))]


def test_a_member_of_two_teams_draws_only_on_the_team_of_the_key(portal):
    ann, personal = portal.member()
    red, blue = _teams(portal, [ann], {"requests_per_minute": 3}, {"requests_per_minute": 3})
    to_red, to_blue = _key(portal, ann, red, "red"), _key(portal, ann, blue, "blue")
    red_statuses = _statuses(portal, to_red, 5)
    assert red_statuses.count(200) == 3 and red_statuses.count(429) == 2
    # Blue was not charged for red's requests: its full three are still there.
    assert _statuses(portal, to_blue, 3) == [200, 200, 200]
    refused = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(to_blue), json=CHAT)
    assert refused.status_code == 429 and f"team {blue.name}" in refused.json()["error"]["message"]
    # A key without a team, of a member of two teams, is personal: neither team counts it.
    assert _statuses(portal, personal, 4) == [200] * 4
    rows = portal.usage_rows(ann, count=14)
    charged = {(row.key_prefix, row.team_id) for row in rows}
    assert charged == {(to_red[:PREFIX_LEN], red.pk), (to_blue[:PREFIX_LEN], blue.pk), (personal[:PREFIX_LEN], None)}


def test_a_key_without_a_team_is_charged_to_the_only_team_of_its_owner(portal):
    ann, raw = portal.member()
    (solo,) = _teams(portal, [ann], {"requests_per_minute": 2})
    assert _statuses(portal, raw, 3).count(200) == 2
    rows = portal.usage_rows(ann, count=3)
    assert {row.team_id for row in rows} == {solo.pk}


def test_a_key_bound_to_a_team_its_owner_left_is_refused_saying_why(portal):
    from accounts.teams import selectors, services

    ann, _raw = portal.member()
    red, _blue = _teams(portal, [ann], {}, {})
    raw = _key(portal, ann, red)
    url = f"{portal.url}/v1/chat/completions"
    assert httpx.post(url, headers=portal.headers(raw), json=CHAT).status_code == 200  # now cached
    with portal.db():
        services.team_member_remove(actor=None, membership=selectors.membership_get(team=red, user_id=ann.pk))
    refused = httpx.post(url, headers=portal.headers(raw), json=CHAT)
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert error["code"] == "key_team_left"
    assert f"charged to team {red.name}, which {ann.username} no longer belongs to" in error["message"]
    rows = portal.usage_rows(ann, count=2)
    # The ledger says what the client got; the refusal spent no tokens.
    assert [(r.status, r.total_tokens > 0) for r in rows] == [(200, True), (401, False)]


@contextmanager
def _session(portal, user):
    with httpx.Client(base_url=portal.url) as client:
        client.get("/accounts/login/")
        client.post("/accounts/login/", data={"username": user.username, "password": "pw-Secret-123",
                                              "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        yield client


def test_the_chat_session_is_charged_to_the_team_it_names_and_only_one_of_the_users(portal):
    ann, _raw = portal.member()
    outsider, _ = portal.member()
    red, blue = _teams(portal, [ann], {}, {})
    (theirs,) = _teams(portal, [outsider], {})
    with _session(portal, ann) as client:
        csrf = {"X-CSRFToken": client.cookies["csrftoken"]}
        assert client.post("/v1/chat/completions", json=CHAT, headers={**csrf, "X-Portal-Team": str(blue.pk)}) \
            .status_code == 200
        assert client.post("/v1/chat/completions", json=CHAT, headers=csrf).status_code == 200  # personal
        stolen = client.post("/v1/chat/completions", json=CHAT, headers={**csrf, "X-Portal-Team": str(theirs.pk)})
        assert stolen.status_code == 403
        assert stolen.json()["error"]["code"] == "team_not_yours"
        assert f"not a member of team {theirs.pk}" in stolen.json()["error"]["message"]
        for junk in ("red", "-1", "9" * 5000):
            refused = client.post("/v1/chat/completions", json=CHAT, headers={**csrf, "X-Portal-Team": junk})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_team", junk
    rows = portal.usage_rows(ann, count=2)
    assert sorted((row.team_id or 0) for row in rows) == [0, blue.pk]


def test_team_usage_and_csv_hold_only_the_rows_charged_to_the_team(portal, admin_user):
    from accounts.teams import services

    ann, personal = portal.member()
    red, blue = _teams(portal, [], {}, {})
    url = f"{portal.url}/v1/chat/completions"
    # Before ann joins red: personal usage, which red must not see once she is a member.
    assert httpx.post(url, headers=portal.headers(personal), json=CHAT).status_code == 200
    portal.usage_rows(ann, count=1)
    with portal.db():
        for team in (red, blue):
            services.team_member_add(actor=admin_user, team=team, user=ann)
    to_red, to_blue = _key(portal, ann, red, "red"), _key(portal, ann, blue, "blue")
    for raw in (to_red, to_blue, to_blue):
        assert httpx.post(url, headers=portal.headers(raw), json=CHAT).status_code == 200
    portal.usage_rows(ann, count=4)
    with _session(portal, admin_user) as client:
        page = client.get(f"/usage/teams/{red.pk}/")
        assert page.status_code == 200 and "1 requests" in page.text
        rows = list(csv.DictReader(io.StringIO(client.get(f"/usage/export.csv?team={blue.pk}").text)))
        assert [r["key_prefix"] for r in rows] == [to_blue[:PREFIX_LEN]] * 2
        assert {r["team_name"] for r in rows} == {blue.name}
        everyone = client.get("/usage/team/")
        assert f"<td>{red.name}</td><td>1</td>" in everyone.text and f"<td>{blue.name}</td><td>2</td>" in everyone.text
        by_team = client.get("/usage/cost/?by=team")
        assert by_team.status_code == 200
        assert f"<td>{blue.name}</td><td>2</td>" in by_team.text and "<td>(no team)</td><td>1</td>" in by_team.text


@pytest.mark.browser
def test_a_member_of_two_teams_picks_the_team_on_the_chat_page(portal, page):
    ann, _raw = portal.member()
    _red, blue = _teams(portal, [ann], {}, {})
    login(page, portal.server, ann.username)
    page.goto(f"{portal.url}/chat/")
    page.select_option("#chat-model", "chat-model")
    page.select_option("#chat-team", str(blue.pk))
    page.fill("#chat-input", "Say hello")
    page.click("#chat-send")
    page.locator(".msg-assistant[data-done='1']").wait_for()
    rows = portal.usage_rows(ann, count=1)
    assert rows[0].team_id == blue.pk and rows[0].key_prefix == ""


def test_a_team_admins_share_binds_the_requests_charged_to_that_team_only(portal):
    from accounts.teams import selectors, services

    ann, _raw = portal.member()
    red, blue = _teams(portal, [ann], {"requests_per_minute": 50}, {"requests_per_minute": 50})
    with portal.db():
        root = UserFactory(username=f"root{time.monotonic_ns()}", role="admin")
        services.team_member_limits_set(actor=root, membership=selectors.membership_get(team=red, user_id=ann.pk),
                                        requests_per_minute=2, tokens_per_day=None, concurrent_requests=None)
    to_red, to_blue = _key(portal, ann, red, "red"), _key(portal, ann, blue, "blue")
    assert _statuses(portal, to_red, 4).count(200) == 2
    assert _statuses(portal, to_blue, 4) == [200] * 4
