"""The chat page streams a reply through the gateway with the user's session; usage pages and CSV."""
import csv
import io
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.mark.browser
def test_the_chat_page_streams_a_reply_and_saves_the_conversation(portal, page):
    from gateway.models import ChatMessage, UsageRecord

    user, _raw = portal.member(requests_per_minute=100)
    login(page, portal.server, user.username)
    page.goto(f"{portal.url}/chat/")
    page.select_option("#chat-model", "chat-model")
    page.fill("#chat-system", "Answer briefly.")
    page.fill("#chat-input", "Say hello")
    page.click("#chat-send")
    reply = page.locator(".msg-assistant[data-done='1']")
    reply.wait_for()
    assert reply.inner_text().strip()
    assert "completion tokens" in page.inner_text("#chat-usage")
    page.wait_for_function("() => location.pathname.match(/^\\/chat\\/\\d+\\/$/)")
    rows = portal.usage_rows(user, count=1)
    assert rows[0].key_prefix == "" and rows[0].api_key_id is None and rows[0].status == 200
    with portal.db():
        assert ChatMessage.objects.filter(conversation__user=user, role="assistant").count() == 1
        assert UsageRecord.objects.filter(user=user, model="chat-model").count() == 1
    # The conversation reopens with its history.
    page.reload()
    assert page.locator(".msg-user").first.inner_text() == "Say hello"


def test_the_session_path_needs_the_csrf_token(portal):
    user, _raw = portal.member()
    with httpx.Client(base_url=portal.url) as client:
        client.get("/accounts/login/")
        response = client.post("/accounts/login/", data={"username": user.username, "password": "pw-Secret-123",
                                                          "csrfmiddlewaretoken": client.cookies["csrftoken"]})
        assert response.status_code in (200, 302)
        chat = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        assert client.post("/v1/chat/completions", json=chat).status_code == 401  # cookie alone is not enough
        ok = client.post("/v1/chat/completions", json=chat, headers={"X-CSRFToken": client.cookies["csrftoken"]})
        assert ok.status_code == 200


def test_usage_pages_and_csv_show_only_what_one_may_see(portal, admin_user):
    mia, raw = portal.member()
    sam, raw_sam = portal.member()
    chat = {"model": "chat-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    for key in (raw, raw, raw_sam):
        assert httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(key), json=chat).is_success
    httpx.post(f"{portal.url}/v1/chat/completions", headers=portal.headers(raw), json={**chat, "model": "nope"})
    portal.usage_rows(mia, count=3)
    portal.usage_rows(sam, count=1)

    with portal.db():
        from django.test import Client

        client = Client()
        client.force_login(mia)
        page = client.get("/usage/").content.decode()
        assert "3 requests" in page and "chat-model" in page and "model_not_found" in page
        assert client.get("/usage/team/").status_code == 403
        rows = list(csv.DictReader(io.StringIO(client.get("/usage/export.csv").content.decode())))
        assert {r["username"] for r in rows} == {mia.username} and len(rows) == 3
        assert client.get("/usage/export.csv?scope=team").status_code == 403

        client.force_login(admin_user)
        team = client.get("/usage/team/").content.decode()
        assert mia.username in team and sam.username in team and "Top users" in team
        rows = list(csv.DictReader(io.StringIO(client.get("/usage/export.csv?scope=team").content.decode())))
        assert len(rows) == 4

    metrics = httpx.get(f"{portal.url}/metrics").text
    assert f'portal_gateway_requests_total{{model="chat-model",status="200",user="{mia.username}"}} 2.0' in metrics
    assert f'portal_gateway_tokens_total{{kind="completion",model="chat-model",user="{mia.username}"}} 4.0' in metrics


@pytest.mark.browser
def test_a_new_conversation_joins_the_sidebar_without_a_reload(portal, page):
    user, _raw = portal.member(requests_per_minute=100)
    login(page, portal.server, user.username)
    page.goto(f"{portal.url}/chat/")
    assert page.locator("#chat-conversations [data-no-conversations]").count() == 1
    page.select_option("#chat-model", "chat-model")
    page.fill("#chat-input", "First question\nwith a second line")
    page.click("#chat-send")
    entry = page.locator("#chat-conversations li.active a")
    entry.wait_for()
    assert entry.inner_text() == "First question"
    assert page.locator("#chat-conversations [data-no-conversations]").count() == 0
    page.locator(".msg-assistant[data-done='1']").wait_for()
    page.fill("#chat-input", "A follow-up")
    page.click("#chat-send")
    page.locator(".msg-assistant[data-done='1']").nth(1).wait_for()
    assert page.locator("#chat-conversations li").count() == 1
    assert entry.get_attribute("href") == urlparse(page.url).path
