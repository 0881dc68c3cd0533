"""A form's `next` never sends the browser off-site after a POST (through daphne)."""
import httpx
import pytest

from accounts import services
from tests.benchmarks.factories import ProfileFactory, ServerFactory

OFF_SITE = ["https://evil.example/", "//evil.example/", "/\\evil.example/", "\\\\evil.example/",
            "http:///evil.example/"]


@pytest.fixture
def browser_session(asgi_server, admin_user):
    with httpx.Client(base_url=asgi_server.url, timeout=30) as client:
        client.get("/accounts/login/")
        client.post("/accounts/login/", data={"username": "alice", "password": "pw-Secret-123",
                                              "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        yield client


def post_next(client: httpx.Client, path: str, next_url: str) -> str:
    response = client.post(path, data={"next": next_url, "csrfmiddlewaretoken": client.cookies["csrftoken"]})
    assert response.status_code == 302, response.text[:500]
    return response.headers["location"]


@pytest.mark.parametrize("next_url", OFF_SITE)
def test_off_site_next_falls_back_to_the_page_of_the_form(browser_session, admin_user, next_url):
    key, _raw = services.api_key_create(owner=admin_user, name="laptop")
    server = ServerFactory(status="stopped")
    profile = ProfileFactory()
    assert post_next(browser_session, f"/accounts/keys/{key.pk}/revoke/", next_url) == "/accounts/keys/"
    assert post_next(browser_session, f"/servers/{server.pk}/stop/", next_url) == f"/servers/{server.pk}/"
    assert post_next(browser_session, f"/models/{profile.pk}/download/", next_url) == "/models/downloads/"


def test_a_next_on_this_site_is_followed(browser_session, admin_user):
    key, _raw = services.api_key_create(owner=admin_user, name="laptop")
    server = ServerFactory(status="stopped")
    assert post_next(browser_session, f"/accounts/keys/{key.pk}/revoke/", "/accounts/keys/?all=1") == \
        "/accounts/keys/?all=1"
    assert post_next(browser_session, f"/servers/{server.pk}/stop/", "/servers/") == "/servers/"
