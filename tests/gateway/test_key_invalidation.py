"""A key or owner changed anywhere (admin, ORM save, API, a service) acts on the gateway's next request.

Each test first makes the daphne gateway cache the key's principal, then changes the row the way a
person would, then expects the very next /v1 request to be answered under the new rules. The last
test loses the invalidation on purpose and expects the cache lifetime to bound the damage.
"""
import time
import uuid
from datetime import timedelta

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey
from tests.factories import UserFactory
from tests.gateway.conftest import AUTH_CACHE_TTL_S

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _chat(portal, raw: str, model: str = "chat-model") -> httpx.Response:
    return httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json={**CHAT, "model": model})


def _code(response: httpx.Response) -> str | int:
    return response.json()["error"]["code"] if response.status_code >= 400 else response.status_code


def _cached_key(portal, **member) -> tuple[ApiKey, str]:
    """A member's key that the gateway has just loaded and cached (two answered requests)."""
    user, raw = portal.member(**member)
    for _ in range(2):
        assert _chat(portal, raw).status_code == 200
    with portal.db():
        return ApiKey.objects.select_related("owner").get(owner=user), raw


def _admin(portal) -> Client:
    client = Client()
    with portal.db():
        admin = UserFactory(username=f"a{uuid.uuid4().hex[:10]}", role="admin", is_staff=True, is_superuser=True)
        client.force_login(admin)
    return client


def _admin_post(portal, url: str, data: dict) -> None:
    with portal.db():
        response = _admin(portal).post(url, data)
    assert response.status_code == 302, response.content.decode()[-2000:]


def _key_change_form(portal, key: ApiKey, *, scopes: list[str], expires_at) -> None:
    local = timezone.localtime(expires_at) if expires_at else None
    _admin_post(portal, f"/admin/accounts/apikey/{key.pk}/change/", {
        "scopes": f"{scopes!r}".replace("'", '"'),
        "expires_at_0": f"{local:%Y-%m-%d}" if local else "", "expires_at_1": f"{local:%H:%M:%S}" if local else ""})


def _user_change_form(portal, user, **changes) -> None:
    """Django admin's user form, as a person submits it after changing `changes`."""
    joined = timezone.localtime(user.date_joined)
    data = {"username": user.username, "first_name": "", "last_name": "", "email": user.email,
            "is_active": "on", "role": user.role, "date_joined_0": f"{joined:%Y-%m-%d}",
            "date_joined_1": f"{joined:%H:%M:%S}", "last_login_0": "", "last_login_1": ""}
    data.update(changes)
    _admin_post(portal, f"/admin/accounts/user/{user.pk}/change/", {k: v for k, v in data.items() if v is not None})


def _api(portal, raw: str, method: str, key: ApiKey, **payload) -> None:
    response = httpx.request(method, f"{portal.url}/api/accounts/keys/{key.pk}", headers={"X-API-Key": raw},
                             json=payload or None)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("via", ["admin", "orm", "api"])
def test_a_revoked_key_is_refused_on_the_next_request(portal, via):
    key, raw = _cached_key(portal)
    if via == "admin":
        _admin_post(portal, "/admin/accounts/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    elif via == "orm":
        with portal.db():
            key.revoked_at = timezone.now()
            key.save()
    else:
        _api(portal, raw, "DELETE", key)
    assert _code(_chat(portal, raw)) == "revoked_api_key"


@pytest.mark.parametrize("via", ["admin", "orm", "api"])
def test_narrowed_scopes_apply_on_the_next_request(portal, via):
    key, raw = _cached_key(portal)
    if via == "admin":
        _key_change_form(portal, key, scopes=["slow-model"], expires_at=None)
    elif via == "orm":
        with portal.db():
            key.scopes = ["slow-model"]
            key.save()
    else:
        _api(portal, raw, "PATCH", key, scopes=["slow-model"])
    refused = _chat(portal, raw)
    assert _code(refused) == "model_not_allowed"
    assert "may only use slow-model" in refused.json()["error"]["message"]
    models = httpx.get(f"{portal.url}/v1/models", headers=portal.headers(raw)).json()["data"]
    assert [m["id"] for m in models] == ["slow-model"]


@pytest.mark.parametrize("via", ["admin", "orm", "api"])
def test_a_shortened_expiry_applies_on_the_next_request(portal, via):
    key, raw = _cached_key(portal)
    past = timezone.now() - timedelta(minutes=5)
    if via == "admin":
        _key_change_form(portal, key, scopes=[], expires_at=past)
    elif via == "orm":
        with portal.db():
            key.expires_at = past
            key.save()
    else:
        _api(portal, raw, "PATCH", key, expires_at=past.isoformat())
    assert _code(_chat(portal, raw)) == "expired_api_key"


@pytest.mark.parametrize("via", ["admin", "orm"])
def test_a_deactivated_owner_is_refused_on_the_next_request(portal, via):
    key, raw = _cached_key(portal)
    if via == "admin":
        _user_change_form(portal, key.owner, is_active=None)
    else:
        with portal.db():
            key.owner.is_active = False
            key.owner.save()
    assert _code(_chat(portal, raw)) == "inactive_user"


@pytest.mark.parametrize("via", ["admin", "service", "orm"])
def test_a_role_change_applies_its_quota_defaults_on_the_next_request(portal, via):
    key, raw = _cached_key(portal)
    with portal.db():
        services.quota_set(actor=key.owner, role="operator", allowed_models=["slow-model"])
    assert _chat(portal, raw).status_code == 200  # still a member
    if via == "admin":
        _user_change_form(portal, key.owner, role="operator")
    elif via == "service":
        with portal.db():
            services.user_role_set(user=key.owner, role="operator", actor=None)
    else:
        with portal.db():
            key.owner.role = "operator"
            key.owner.save()
    assert _code(_chat(portal, raw)) == "model_not_allowed"


def test_a_lost_invalidation_lives_no_longer_than_the_cache_lifetime(portal):
    """A queryset update sends no signal and bumps nothing: exactly what a lost Redis write looks like."""
    key, raw = _cached_key(portal)
    with portal.db():
        ApiKey.objects.filter(pk=key.pk).update(scopes=["slow-model"])
    changed = time.monotonic()
    assert _chat(portal, raw).status_code == 200  # the cached principal still says "all models"
    while _chat(portal, raw).status_code == 200:
        assert time.monotonic() - changed < AUTH_CACHE_TTL_S + 1, "a stale principal outlived the cache lifetime"
        time.sleep(0.1)
    assert _code(_chat(portal, raw)) == "model_not_allowed"
