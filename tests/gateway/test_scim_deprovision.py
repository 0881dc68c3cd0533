"""A user deprovisioned over SCIM: their key is refused by the running gateway on the very next request."""
import json

import httpx
import pytest
from django.test import Client, override_settings

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)
TOKEN = "scim-token-for-tests-0123456789"
CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _scim(method: str, path: str, body: dict) -> httpx.Response:
    client = Client(headers={"Authorization": f"Bearer {TOKEN}"})
    return getattr(client, method)(f"/scim/v2/{path}", data=json.dumps(body), content_type="application/scim+json")


@pytest.mark.parametrize("how", ["patch_active_false", "delete"])
def test_a_deprovisioned_users_key_stops_on_the_next_gateway_request(portal, how):
    from accounts import services

    with portal.db(), override_settings(PORTAL_SCIM_TOKEN=TOKEN):
        created = _scim("post", "Users", {"userName": f"ann-{how}", "active": True})
        assert created.status_code == 201
        user_id = json.loads(created.content)["id"]
        from accounts.models import User

        _key, raw = services.api_key_create(owner=User.objects.get(pk=user_id), name="laptop")
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    # The gateway has the key in its cache now.
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200
    with portal.db(), override_settings(PORTAL_SCIM_TOKEN=TOKEN):
        if how == "delete":
            assert Client(headers={"Authorization": f"Bearer {TOKEN}"}).delete(
                f"/scim/v2/Users/{user_id}").status_code == 204
        else:
            assert _scim("patch", f"Users/{user_id}", {"Operations": [
                {"op": "replace", "path": "active", "value": False}]}).status_code == 200
    refused = httpx.post(url, headers=headers, json=CHAT)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] in ("inactive_user", "revoked_api_key")
