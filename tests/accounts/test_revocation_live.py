"""Keys are cached in each web process; revocation and deactivation must still act at once."""
import httpx
import pytest

from accounts import services

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
