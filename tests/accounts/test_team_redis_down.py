"""With the quota store (Redis) down, the team and usage pages still render, the counters shown as
unavailable; the team usage API says so instead of failing."""
import tempfile
from pathlib import Path

import pytest
from django.test import Client

from accounts import limits
from accounts import services as account_services
from accounts.teams import services
from sparkportal.lib import embedded_redis, procs
from tests.factories import UserFactory
from tests.plugins.embedded_redis import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def own_redis(settings):
    """A Redis of this test alone, pointed at by the quota counters; the test stops it."""
    port = free_port()
    proc = embedded_redis.start(port=port, data_dir=Path(tempfile.mkdtemp(prefix="portal-redis-")), persist=False)
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    limits._sync_client = None
    yield proc
    procs.stop_group(proc, timeout=5)
    limits._sync_client = None


def test_team_and_usage_pages_render_with_the_counters_unavailable_when_redis_stops(own_redis, admin_user,
                                                                                   member_user):
    import time

    lead = UserFactory(username="lena")
    team = services.team_save(actor=admin_user, name="vision", monthly_token_budget=1000)
    services.team_member_add(actor=admin_user, team=team, user=lead, is_team_admin=True)
    services.team_member_add(actor=admin_user, team=team, user=member_user)
    limits.sync_redis().set(limits.team_base(team.pk) + "tpm:" + limits.month_of(time.time()), 850)
    _key, raw = account_services.api_key_create(owner=member_user, name="api")
    member, admin = Client(), Client()
    member.force_login(member_user)
    admin.force_login(lead)
    page = member.get(f"/accounts/teams/{team.pk}/").content.decode()
    assert '<strong id="team-month-tokens">850</strong>' in page and "data-testid=\"budget-banner\"" in page

    procs.stop_group(own_redis, timeout=5)

    team_page = member.get(f"/accounts/teams/{team.pk}/")
    assert team_page.status_code == 200
    text = team_page.content.decode()
    assert "token count unavailable" in text and "the quota store is not reachable" in text
    assert "budget-banner" not in text and "of a budget of 1000" in text
    team_usage = admin.get(f"/usage/teams/{team.pk}/")
    assert team_usage.status_code == 200 and "unavailable" in team_usage.content.decode()
    mine = member.get("/usage/")
    assert mine.status_code == 200 and "unavailable (the quota store is not reachable)" in mine.content.decode()
    assert admin.get(f"/usage/export.csv?team={team.pk}").status_code == 200
    usage = Client(headers={"Authorization": f"Bearer {raw}"}).get(f"/api/teams/{team.pk}/usage")
    assert usage.status_code == 200, usage.content
    assert usage.json() == {"tokens": None, "available": False, "budget": 1000, "percent": None, "warning": False,
                            "exhausted": False}
