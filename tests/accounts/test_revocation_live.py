"""Keys are cached in each web process; revocation and deactivation must still act at once."""
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from accounts import services
from accounts.models import ApiKey
from tests.conftest import start_daphne, stop_process, subprocess_env

pytestmark = pytest.mark.django_db(transaction=True)


def test_revocation_takes_effect_on_the_next_request(asgi_server, member_user):
    key, raw = services.api_key_create(owner=member_user, name="hot")
    with httpx.Client(base_url=asgi_server.url, headers={"Authorization": f"Bearer {raw}"}) as client:
        for _ in range(3):  # the key is now cached in the daphne process
            assert client.get("/api/accounts/me").status_code == 200
        services.api_key_revoke(key=key, actor=member_user)
        response = client.get("/api/accounts/me")
    assert response.status_code == 401
    assert "was revoked" in response.json()["detail"]


def test_deactivating_the_owner_takes_effect_on_the_next_request(asgi_server, member_user):
    _key, raw = services.api_key_create(owner=member_user, name="hot")
    with httpx.Client(base_url=asgi_server.url, headers={"X-API-Key": raw}) as client:
        assert client.get("/api/accounts/me").status_code == 200
        member_user.is_active = False
        member_user.save()
        response = client.get("/api/accounts/me")
    assert response.status_code == 401
    assert "deactivated" in response.json()["detail"]


def test_a_shortened_expiry_saved_on_the_model_takes_effect_on_the_next_request(asgi_server, member_user):
    key, raw = services.api_key_create(owner=member_user, name="hot")
    with httpx.Client(base_url=asgi_server.url, headers={"X-API-Key": raw}) as client:
        assert client.get("/api/accounts/me").status_code == 200
        key.expires_at = timezone.now() - timedelta(seconds=1)
        key.save()
        response = client.get("/api/accounts/me")
    assert response.status_code == 401
    assert response.json()["code"] == "expired_api_key"


TTL_S = 2.0


@pytest.fixture
def short_lived_cache_server(transactional_db):
    server = start_daphne(subprocess_env(PORTAL_AUTH_CACHE_TTL_S=str(TTL_S)))
    yield server
    stop_process(server.proc)


def test_a_lost_invalidation_lives_no_longer_than_the_cache_lifetime(short_lived_cache_server, member_user):
    """A queryset update bumps nothing, as if the bump had been lost with Redis."""
    key, raw = services.api_key_create(owner=member_user, name="hot")
    with httpx.Client(base_url=short_lived_cache_server.url, headers={"X-API-Key": raw}) as client:
        assert client.get("/api/accounts/me").status_code == 200
        ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        changed = time.monotonic()
        assert client.get("/api/accounts/me").status_code == 200  # still the cached row
        while (response := client.get("/api/accounts/me")).status_code == 200:
            assert time.monotonic() - changed < TTL_S + 1, "a revoked key outlived the cache lifetime"
            time.sleep(0.1)
    assert response.json()["code"] == "revoked_api_key"
