"""A key can only make or touch keys no broader and no longer-lived than itself; the browser session
(the owner at the keyboard) may do anything the owner may."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def _call(method: str, raw: str, url: str, payload: dict | None = None):
    return getattr(Client(), method)(url, payload or {}, content_type="application/json",
                                     headers={"X-API-Key": raw})


def _refused(response, code: str) -> str:
    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == code
    return body["detail"]


@pytest.fixture
def limited(member_user):
    expiry = timezone.now() + timedelta(days=7)
    key, raw = services.api_key_create(owner=member_user, name="limited", scopes=["small"], expires_at=expiry)
    return key, raw, expiry


def test_a_scoped_key_cannot_create_an_unscoped_or_wider_key(limited):
    _key, raw, expiry = limited
    until = expiry.isoformat()
    detail = _refused(_call("post", raw, "/api/accounts/keys", {"name": "free", "expires_at": until}),
                      "key_broader_than_caller")
    assert "may only use small" in detail and "every model" in detail and "Keys page" in detail
    detail = _refused(_call("post", raw, "/api/accounts/keys", {"name": "wide", "scopes": ["small", "big"],
                                                                "expires_at": until}), "key_broader_than_caller")
    assert "big" in detail
    assert not ApiKey.objects.filter(name__in=["free", "wide"]).exists()


def test_an_expiring_key_cannot_create_a_key_that_outlives_it(limited):
    _key, raw, expiry = limited
    detail = _refused(_call("post", raw, "/api/accounts/keys", {"name": "forever", "scopes": ["small"]}),
                      "key_outlives_caller")
    assert "never expire" in detail
    later = (expiry + timedelta(days=1)).isoformat()
    _refused(_call("post", raw, "/api/accounts/keys", {"name": "later", "scopes": ["small"], "expires_at": later}),
             "key_outlives_caller")


def test_a_key_within_the_callers_limits_is_created(limited):
    _key, raw, expiry = limited
    response = _call("post", raw, "/api/accounts/keys", {"name": "child", "scopes": ["small"],
                                                         "expires_at": (expiry - timedelta(days=1)).isoformat()})
    assert response.status_code == 201, response.content


def test_a_limited_key_cannot_revoke_or_change_the_owners_broader_keys(limited, member_user):
    _key, raw, expiry = limited
    main, _main_raw = services.api_key_create(owner=member_user, name="main")
    _refused(_call("delete", raw, f"/api/accounts/keys/{main.pk}"), "key_broader_than_caller")
    _refused(_call("patch", raw, f"/api/accounts/keys/{main.pk}", {"scopes": ["small"]}),
             "key_broader_than_caller")
    main.refresh_from_db()
    assert main.revoked_at is None and main.scopes == []


def test_a_limited_key_cannot_widen_or_extend_itself_through_patch(limited):
    key, raw, expiry = limited
    _refused(_call("patch", raw, f"/api/accounts/keys/{key.pk}", {"scopes": []}), "key_broader_than_caller")
    _refused(_call("patch", raw, f"/api/accounts/keys/{key.pk}", {"scopes": ["small", "big"]}),
             "key_broader_than_caller")
    _refused(_call("patch", raw, f"/api/accounts/keys/{key.pk}", {"expires_at": None}), "key_outlives_caller")
    key.refresh_from_db()
    assert key.scopes == ["small"] and key.expires_at == expiry
    # Narrowing itself, or ending itself, stays allowed.
    assert _call("delete", raw, f"/api/accounts/keys/{key.pk}").status_code == 200


def test_an_unlimited_key_and_the_browser_session_manage_every_key_of_the_owner(limited, member_user):
    key, _raw, _expiry = limited
    _main, main_raw = services.api_key_create(owner=member_user, name="main")
    assert _call("patch", main_raw, f"/api/accounts/keys/{key.pk}", {"scopes": []}).status_code == 200
    browser = Client()
    browser.force_login(member_user)
    response = browser.post("/api/accounts/keys", {"name": "free"}, content_type="application/json")
    assert response.status_code == 201, response.content
