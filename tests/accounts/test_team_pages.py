"""The team page in a real browser: members, this month's tokens, a team admin's share form, the CSV."""
import pytest

from accounts import limits
from accounts.teams import services
from tests.conftest import login
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(admin_user, member_user):
    lead = UserFactory(username="lena")
    team = services.team_save(actor=admin_user, name="vision", requests_per_minute=60, monthly_token_budget=1000)
    services.team_member_add(actor=admin_user, team=team, user=lead, is_team_admin=True)
    services.team_member_add(actor=admin_user, team=team, user=member_user)
    return team


def _spend(team, tokens: int) -> None:
    client = limits.sync_redis()
    client.set(limits.team_base(team.pk) + "tpm:" + limits.month_of(__import__("time").time()), tokens)


def test_a_team_admin_sets_a_members_share_and_downloads_the_csv(asgi_server, page, team, member_user):
    login(page, asgi_server, "lena")
    page.click("text=Teams")
    page.click("text=vision")
    row = page.locator("tr[data-member=mia]")
    row.locator("input[name=requests_per_minute]").fill("75")
    row.locator("button[type=submit]").click()
    assert "Team vision allows at most 60 requests per minute" in page.locator(".messages").inner_text()
    row = page.locator("tr[data-member=mia]")
    row.locator("input[name=requests_per_minute]").fill("20")
    row.locator("button[type=submit]").click()
    assert "Limits of mia saved" in page.locator(".messages").inner_text()
    with page.expect_download() as download:
        page.click("#team-usage-csv")
    assert download.value.suggested_filename == f"usage-team-{team.pk}.csv"
    with open(download.value.path()) as csv:
        assert csv.readline().startswith("created_at,username")


def test_a_member_sees_the_team_and_the_budget_banner_but_no_admin_controls(asgi_server, page, team, member_user):
    _spend(team, 850)
    login(page, asgi_server, "mia")
    banner = page.locator("[data-testid=budget-banner]")
    assert "Team vision has used 85.0% of its monthly token budget (850 of 1000)" in banner.inner_text()
    page.goto(f"{asgi_server.url}/accounts/teams/{team.pk}/")
    assert page.locator("#team-month-percent").inner_text() == "85.0"
    assert page.locator("#member-keys").count() == 0 and page.locator("#team-usage-csv").count() == 0
    response = page.goto(f"{asgi_server.url}/usage/teams/{team.pk}/")
    assert response.status == 403


def test_a_stranger_gets_a_404_for_the_team_page(asgi_server, page, team, stranger):
    login(page, asgi_server, "sam")
    assert page.goto(f"{asgi_server.url}/accounts/teams/{team.pk}/").status == 404
    assert page.goto(f"{asgi_server.url}/usage/export.csv?team={team.pk}").status == 404
