"""PATCH /api/accounts/keys/<id>: narrow a key's scopes or change its expiry, audited."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import AuditEvent

pytestmark = pytest.mark.django_db


def _patch(raw: str, key_id: int, payload: dict):
    return Client().patch(f"/api/accounts/keys/{key_id}", payload, content_type="application/json",
                          headers={"X-API-Key": raw})


def test_the_owner_narrows_scopes_and_keeps_what_was_left_out(member_user):
    expiry = timezone.now() + timedelta(days=30)
    key, raw = services.api_key_create(owner=member_user, name="ide", scopes=["a", "b"], expires_at=expiry)
    response = _patch(raw, key.pk, {"scopes": ["b", " b "]})
    assert response.status_code == 200, response.content
    key.refresh_from_db()
    assert key.scopes == ["b"] and key.expires_at == expiry
    event = AuditEvent.objects.get(action="accounts.apikey.changed")
    assert event.details["old"]["scopes"] == ["a", "b"] and event.details["new"]["scopes"] == ["b"]


def test_a_null_expiry_removes_it_and_a_past_one_ends_the_key(member_user, django_capture_on_commit_callbacks):
    key, raw = services.api_key_create(owner=member_user, name="ide",
                                       expires_at=timezone.now() + timedelta(days=1))
    browser = Client()
    browser.force_login(member_user)  # a key may not lift its own expiry (test_key_escalation); the owner may
    assert browser.patch(f"/api/accounts/keys/{key.pk}", {"expires_at": None},
                         content_type="application/json").status_code == 200
    key.refresh_from_db()
    assert key.expires_at is None
    past = timezone.now() - timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):  # the generation bump, as at a real commit
        assert _patch(raw, key.pk, {"expires_at": past.isoformat()}).status_code == 200
    response = Client().get("/api/accounts/me", headers={"X-API-Key": raw})
    assert response.status_code == 401 and response.json()["code"] == "expired_api_key"


def test_someone_elses_key_is_a_404_and_a_revoked_key_cannot_change(member_user, stranger):
    key, _raw = services.api_key_create(owner=member_user, name="ide")
    _other, stranger_raw = services.api_key_create(owner=stranger, name="mine")
    assert _patch(stranger_raw, key.pk, {"scopes": ["x"]}).status_code == 404
    _spare, raw = services.api_key_create(owner=member_user, name="spare")
    services.api_key_revoke(key=key, actor=member_user)
    response = _patch(raw, key.pk, {"scopes": ["x"]})
    assert response.status_code == 400 and "is revoked" in response.json()["detail"]


def test_an_edit_in_django_admin_goes_through_the_service(admin_user, member_user):
    key, _raw = services.api_key_create(owner=member_user, name="ide")
    client = Client()
    client.force_login(admin_user)
    response = client.post(f"/admin/accounts/apikey/{key.pk}/change/",
                           {"scopes": '["small"]', "expires_at_0": "", "expires_at_1": ""})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.scopes == ["small"]
    assert AuditEvent.objects.get(action="accounts.apikey.changed").actor == admin_user
