"""The REST API with keys and sessions: 401s say why, 403s say who may."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def test_bearer_and_header_keys_work(member_user):
    _key, raw = services.api_key_create(owner=member_user, name="cli")
    client = Client()
    for headers in ({"Authorization": f"Bearer {raw}"}, {"X-API-Key": raw}):
        response = client.get("/api/accounts/me", headers=headers)
        assert response.status_code == 200
        assert response.json()["username"] == "mia"


def test_no_credentials_is_401_with_instructions():
    response = Client().get("/api/accounts/me")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize("case, expected", [
    ("malformed", "Malformed API key"),
    ("unknown", "Unknown API key"),
    ("revoked", "was revoked"),
    ("expired", "expired on"),
])
def test_bad_keys_are_401_json_with_the_reason(member_user, case, expected):
    key, raw = services.api_key_create(owner=member_user, name="k")
    if case == "malformed":
        raw = "not-a-key"
    elif case == "unknown":
        raw = raw[:-4] + "zzzz"
    elif case == "revoked":
        services.api_key_revoke(key=key, actor=member_user)
    else:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    response = Client().get("/api/accounts/me", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401
    body = response.json()
    assert expected in body["detail"]
    assert body["code"] in {"invalid_api_key", "revoked_api_key", "expired_api_key"}


def test_a_gateway_only_key_is_refused_by_the_rest_api(member_user):
    _key, raw = services.api_key_create(owner=member_user, name="classifier job #7", gateway_only=True)
    for headers in ({"Authorization": f"Bearer {raw}"}, {"X-API-Key": raw}):
        response = Client().get("/api/accounts/me", headers=headers)
        assert response.status_code == 401
        assert response.json()["code"] == "gateway_only_api_key"
        assert "(classifier job #7) works only on the /v1 gateway" in response.json()["detail"]


def test_member_calling_an_admin_endpoint_gets_403_with_message(member_user):
    _key, raw = services.api_key_create(owner=member_user, name="k")
    response = Client().get("/api/accounts/audit", headers={"X-API-Key": raw})
    assert response.status_code == 403
    assert response.json()["detail"] == "Only admins may do this: ask an admin of the portal."


def test_admin_reads_the_audit_log(admin_user):
    _key, raw = services.api_key_create(owner=admin_user, name="k")
    response = Client().get("/api/accounts/audit?action=apikey", headers={"X-API-Key": raw})
    assert response.status_code == 200
    assert response.json()["items"][0]["action"] == "accounts.apikey.created"


def test_keys_api_creates_lists_and_revokes(member_user, stranger):
    client = Client()
    client.force_login(member_user)
    created = client.post("/api/accounts/keys", {"name": "script", "scopes": ["qwen-coder"]},
                          content_type="application/json")
    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith("sk-sp-")
    listed = client.get("/api/accounts/keys").json()["items"]
    assert [k["name"] for k in listed] == ["script"] and "key" not in listed[0]
    bad = client.post("/api/accounts/keys", {"name": ""}, content_type="application/json")
    assert bad.status_code == 400 and "Give the key a name" in bad.json()["detail"]
    other = Client()
    other.force_login(stranger)
    assert other.delete(f"/api/accounts/keys/{listed[0]['id']}").status_code == 404
    revoked = client.delete(f"/api/accounts/keys/{listed[0]['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
