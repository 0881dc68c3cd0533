import pytest
from django.test import Client

from accounts.models import AuditEvent, User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_login_and_logout_are_audited(member_user):
    client = Client()
    response = client.post("/accounts/login/", {"username": "mia", "password": PASSWORD})
    assert response.status_code == 302 and response.url == "/"
    client.post("/accounts/logout/")
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["accounts.user.logged_in", "accounts.user.logged_out"]


def test_wrong_password_shows_a_message_and_is_audited(member_user):
    response = Client().post("/accounts/login/", {"username": "mia", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    event = AuditEvent.objects.get(action="accounts.user.login_failed")
    assert event.details["username"] == "mia"


def test_repeated_failures_lock_the_account_out(member_user, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "mia", "password": "wrong"})
    locked = client.post("/accounts/login/", {"username": "mia", "password": PASSWORD})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    # Another user from the same address is not locked out by mia's failures.
    User.objects.create_user("other", password=PASSWORD)
    assert client.post("/accounts/login/", {"username": "other", "password": PASSWORD}).status_code == 302


def test_password_change_page(member_user):
    client = Client()
    client.force_login(member_user)
    response = client.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": "An0ther-long-pw",
                                                   "new_password2": "An0ther-long-pw"})
    assert response.status_code == 302
    member_user.refresh_from_db()
    assert member_user.check_password("An0ther-long-pw")


def test_role_change_in_admin_is_audited(admin_user, member_user):
    client = Client()
    client.force_login(admin_user)
    response = client.post(f"/admin/accounts/user/{member_user.pk}/change/", {
        "username": "mia", "role": "operator", "is_active": "on", "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00", "email": "mia@example.test"})
    assert response.status_code == 302, response.content.decode()[:2000]
    member_user.refresh_from_db()
    assert member_user.role == "operator"
    event = AuditEvent.objects.get(action="accounts.user.role_changed")
    assert event.details == {"username": "mia", "old": "member", "new": "operator"}
    assert event.actor == admin_user
