import pytest
from django.test import Client

from accounts import services

pytestmark = pytest.mark.django_db


def test_keys_page_creates_a_key_and_shows_it_once(member_user):
    client = Client()
    client.force_login(member_user)
    created = client.post("/accounts/keys/", {"name": "ide"}).content.decode()
    assert "shown only this once" in created
    again = client.get("/accounts/keys/").content.decode()
    assert "shown only this once" not in again and "ide" in again


def test_keys_page_shows_errors(member_user):
    client = Client()
    client.force_login(member_user)
    services.api_key_create(owner=member_user, name="ide")
    page = client.post("/accounts/keys/", {"name": "ide"}).content.decode()
    assert "already have an active key named" in page


def test_members_see_only_their_keys_and_admins_all(member_user, stranger, admin_user):
    services.api_key_create(owner=stranger, name="strangers-key")
    client = Client()
    client.force_login(member_user)
    assert "strangers-key" not in client.get("/accounts/keys/?all=1").content.decode()
    client.force_login(admin_user)
    assert "strangers-key" in client.get("/accounts/keys/?all=1").content.decode()


def test_revoking_someone_elses_key_is_404(member_user, stranger):
    key, _ = services.api_key_create(owner=stranger, name="theirs")
    client = Client()
    client.force_login(member_user)
    assert client.post(f"/accounts/keys/{key.pk}/revoke/").status_code == 404


def test_audit_page_is_for_admins_and_filters(member_user, admin_user):
    services.api_key_create(owner=member_user, name="ide")
    client = Client()
    client.force_login(member_user)
    assert client.get("/accounts/audit/").status_code == 403
    client.force_login(admin_user)
    page = client.get("/accounts/audit/?actor=mia&action=apikey").content.decode()
    assert "accounts.apikey.created" in page
    assert "accounts.apikey.created" not in client.get("/accounts/audit/?actor=nobody").content.decode()


def test_pages_require_login():
    response = Client().get("/")
    assert response.status_code == 302 and "/accounts/login/" in response.url
