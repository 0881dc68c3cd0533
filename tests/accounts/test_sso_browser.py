"""Single sign-on against a real OpenID provider on loopback, through its pages in headless Chromium."""
import subprocess
import time

import httpx
import pytest

from accounts.models import AuditEvent, User
from accounts.sso import services as sso_services
from accounts.sso.models import SsoIdentity
from accounts.teams import services as team_services
from accounts.teams.models import TeamMembership
from sparkportal.runner import web_argv
from tests.conftest import BASE_DIR, AsgiServer, free_port, login, stop_process, subprocess_env
from tests.oidc import OidcProvider

pytestmark = pytest.mark.django_db(transaction=True)


def _daphne_on(port: int, env: dict) -> AsgiServer:
    proc = subprocess.Popen(web_argv("127.0.0.1", port), cwd=BASE_DIR, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        try:
            httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=1)
            return AsgiServer(proc, port)
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("daphne did not start within 30 s")


@pytest.fixture
def sso(transactional_db, tmp_path):
    """The provider and a portal that trusts it (the portal's port is fixed first: the provider registers it)."""
    portal_port = free_port()
    provider = OidcProvider(free_port(), tmp_path / "accounts.json", f"http://127.0.0.1:{portal_port}")
    server = None
    try:
        server = _daphne_on(portal_port, subprocess_env(
            PORTAL_OIDC_ISSUER=provider.issuer, PORTAL_OIDC_CLIENT_ID="portal",
            PORTAL_OIDC_CLIENT_SECRET="portal-secret", PORTAL_OIDC_PROVIDER_NAME="Test IdP",
            PORTAL_PASSWORD_LOGIN="break-glass"))
        yield provider, server
    finally:
        if server is not None:
            stop_process(server.proc)
        provider.stop()


@pytest.fixture
def mapped_team(admin_user):
    team = team_services.team_save(actor=admin_user, name="vision", requests_per_minute=50)
    sso_services.mapping_save(actor=admin_user, group="ml-leads", role="operator", team=team, team_admin=True)
    sso_services.mapping_save(actor=admin_user, group="ml", team=team)
    return team


def _sso_login(page, server, login_name: str, password: str = "pw-at-the-provider") -> list[str]:
    """Log in through the provider's pages; returns the authorization requests the browser made."""
    authorize = []
    page.on("request", lambda r: authorize.append(r.url) if "/auth?" in r.url else None)
    page.goto(f"{server.url}/accounts/login/")
    page.click("#sso-login")
    page.fill("input[name=login]", login_name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    return authorize


def test_first_login_creates_the_user_with_the_groups_role_and_team_then_logout_ends_both_sessions(
        sso, mapped_team, page):
    provider, server = sso
    provider.account("ann", groups=["ml-leads", "unmapped"])
    authorize = _sso_login(page, server, "ann")
    page.wait_for_url(f"{server.url}/")
    assert "ann · Operator" in page.locator(".who").inner_text()
    # Authorization code with PKCE (S256); the provider refuses any request without it.
    assert "code_challenge_method=S256" in authorize[0] and "response_type=code" in authorize[0]
    ann = User.objects.get(username="ann")
    assert ann.role == "operator" and not ann.has_usable_password() and ann.email == "ann@example.test"
    membership = TeamMembership.objects.get(user=ann, team=mapped_team)
    assert membership.is_team_admin and membership.from_sso
    assert SsoIdentity.objects.get(user=ann).groups == ["ml-leads", "unmapped"]
    logged_in = AuditEvent.objects.get(action="accounts.sso.logged_in")
    assert logged_in.details["role"] == "operator" and logged_in.details["teams"] == ["vision"]

    page.click("nav button:has-text('Log out')")
    page.click("button[name=logout]")  # the provider's own end-session confirmation
    page.wait_for_url(f"{server.url}/accounts/login/")
    page.goto(f"{server.url}/")
    assert page.url.startswith(f"{server.url}/accounts/login/")  # the portal session is gone
    page.click("#sso-login")
    assert page.locator("input[name=login]").count() == 1  # and so is the provider's: it asks again


def test_a_group_removed_at_the_provider_demotes_at_the_next_login(sso, mapped_team, page):
    provider, server = sso
    provider.account("ann", groups=["ml-leads"])
    _sso_login(page, server, "ann")
    page.wait_for_url(f"{server.url}/")
    page.click("nav button:has-text('Log out')")
    page.click("button[name=logout]")
    page.wait_for_url(f"{server.url}/accounts/login/")

    provider.account("ann", groups=["ml"])  # out of ml-leads: no more operator, no more team admin
    _sso_login(page, server, "ann")
    page.wait_for_url(f"{server.url}/")
    assert "ann · Member" in page.locator(".who").inner_text()
    ann = User.objects.get(username="ann")
    assert ann.role == "member"
    assert not TeamMembership.objects.get(user=ann, team=mapped_team).is_team_admin

    page.click("nav button:has-text('Log out')")
    page.click("button[name=logout]")
    provider.account("ann", groups=[])
    _sso_login(page, server, "ann")
    page.wait_for_url(f"{server.url}/")
    assert not TeamMembership.objects.filter(user=ann).exists()
    assert AuditEvent.objects.filter(action="accounts.team.member_removed", details__user="ann").exists()
    assert AuditEvent.objects.filter(action="accounts.user.role_changed", target_id=str(ann.pk)).exists()


def test_a_provider_identity_cannot_take_over_a_local_account_of_the_same_name(sso, admin_user, page):
    provider, server = sso
    provider.account("alice", groups=["ml-leads"])  # alice is the portal's local admin
    _sso_login(page, server, "alice")
    page.wait_for_url(f"{server.url}/accounts/login/?sso=refused")
    assert "belongs to a local account" in page.locator("[data-testid=sso-refused]").inner_text()
    refused = AuditEvent.objects.get(action="accounts.sso.refused")
    assert refused.actor_name == "alice" and "local account" in refused.details["reason"]
    assert not SsoIdentity.objects.exists()


def test_password_login_is_kept_for_break_glass_admins_only(sso, admin_user, member_user, page):
    _provider, server = sso
    login(page, server, "alice")  # the local admin still gets in with a password
    page.click("nav button:has-text('Log out')")
    page.wait_for_url(f"{server.url}/accounts/login/")
    assert "break-glass admins only" in page.locator("main").inner_text()
    page.fill("input[name=username]", "mia")
    page.fill("input[name=password]", "pw-Secret-123")
    page.click("button[type=submit]")
    assert page.url.startswith(f"{server.url}/accounts/login/")
    assert AuditEvent.objects.filter(action="accounts.user.password_login_refused", actor_name="mia").exists()
