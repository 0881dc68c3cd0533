"""Every refusal has OpenAI's error shape, the right status and a message that says what to do."""
from datetime import timedelta

import httpx
import openai
import pytest
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)

CHAT = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code
    return body["error"]["message"]


def test_revocation_takes_effect_on_the_next_request(portal):
    from accounts import services
    from accounts.models import ApiKey

    user, raw = portal.member()
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200  # the key is now cached
    with portal.db():
        services.api_key_revoke(key=ApiKey.objects.get(owner=user), actor=user)
    message = _error(httpx.post(url, headers=headers, json=CHAT), 401, "revoked_api_key")
    assert "was revoked: create a new one" in message


def test_a_deactivated_user_is_refused_at_once(portal):
    user, raw = portal.member()
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200
    with portal.db():
        user.is_active = False
        user.save()
    assert "is deactivated" in _error(httpx.post(url, headers=headers, json=CHAT), 401, "inactive_user")


def test_authentication_errors(portal):
    url = f"{portal.url}/v1/chat/completions"
    missing = _error(httpx.post(url, json=CHAT), 401, "missing_api_key")
    assert "Authorization: Bearer" in missing
    assert httpx.post(url, json=CHAT).headers["www-authenticate"].startswith("Bearer")
    assert "Unknown API key" in _error(httpx.post(url, headers=portal.headers("sk-sp-" + "x" * 40), json=CHAT),
                                       401, "invalid_api_key")
    assert "portal keys start with" in _error(httpx.post(url, headers=portal.headers("nope"), json=CHAT), 401,
                                              "invalid_api_key")
    user, raw = portal.member()
    from accounts.models import ApiKey

    with portal.db():
        ApiKey.objects.filter(owner=user).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert "expired" in _error(httpx.post(url, headers={"X-API-Key": raw}, json=CHAT), 401, "expired_api_key")


def test_model_errors_403_404_503(portal):
    _user, raw = portal.member(scopes=["chat-model"])
    headers = portal.headers(raw)
    url = f"{portal.url}/v1/chat/completions"
    message = _error(httpx.post(url, headers=headers, json={**CHAT, "model": "slow-model"}), 403, "model_not_allowed")
    assert "may only use chat-model" in message

    _user, raw = portal.member()
    headers = portal.headers(raw)
    message = _error(httpx.post(url, headers=headers, json={**CHAT, "model": "nope"}), 404, "model_not_found")
    assert "GET /v1/models lists the models you can use" in message
    message = _error(httpx.post(url, headers=headers, json={**CHAT, "model": "stopped-model"}), 503,
                     "model_not_running")
    assert "an operator can start it on the Servers page" in message


def test_bad_requests(portal):
    _user, raw = portal.member()
    headers = portal.headers(raw)
    url = f"{portal.url}/v1/chat/completions"
    assert "not valid JSON" in _error(httpx.post(url, headers=headers, content=b"{oops"), 400, "invalid_json")
    assert '"model" field' in _error(httpx.post(url, headers=headers, json={"messages": []}), 400, "model_missing")
    assert "/v1/chat/completions" in _error(httpx.post(f"{portal.url}/v1/images", headers=headers, json=CHAT), 404,
                                            "unknown_endpoint")
    assert "Use POST" in _error(httpx.get(url, headers=headers), 405, "method_not_allowed")
    # The engine's own validation errors come back as the engine sent them.
    upstream = httpx.post(url, headers=headers, json={"model": "chat-model", "messages": "not a list"})
    assert upstream.status_code == 400 and "error" in upstream.json()


def test_the_openai_client_raises_its_typed_errors(portal):
    _user, raw = portal.member(scopes=["chat-model"])
    oa = openai.OpenAI(base_url=f"{portal.url}/v1", api_key=raw, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError, match="may only use chat-model"):
        oa.chat.completions.create(model="slow-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError, match="Unknown API key"):
        openai.OpenAI(base_url=f"{portal.url}/v1", api_key="sk-sp-" + "y" * 40, max_retries=0).models.list()


def test_a_dead_server_answers_503_saying_so(portal):
    from servers.models import Server

    with portal.db():
        Server.objects.create(node=portal.node, served_model_name="ghost-model", port=9, status=Server.Status.READY)
    _user, raw = portal.member()
    response = httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw),
                          json={**CHAT, "model": "ghost-model"})
    assert "is not answering" in _error(response, 503, "upstream_unreachable")


def test_a_body_over_the_limit_is_a_413_and_the_gateway_keeps_serving(portal):
    from django.conf import settings

    _user, raw = portal.member()
    url, headers = f"{portal.url}/v1/chat/completions", portal.headers(raw)
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * (settings.PORTAL_GATEWAY_MAX_BODY_BYTES + 1)}]}
    message = _error(httpx.post(url, headers=headers, json=huge, timeout=60), 413, "request_too_large")
    assert "PORTAL_GATEWAY_MAX_BODY_BYTES" in message
    assert httpx.post(url, headers=headers, json=CHAT).status_code == 200
