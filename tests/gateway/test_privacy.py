"""Prompts and answers are private: the gateway keeps counts only, chats are their owner's alone (an admin may
delete one unread), and content logging, when a deployment turns it on, is announced on every user's pages."""
import uuid

import httpx
import pytest
import redis
from django.apps import apps
from django.conf import settings
from django.db import models
from django.test import override_settings

from accounts.models import AuditEvent
from gateway import services
from gateway.models import ChatMessage, Conversation
from tests.conftest import stop_process, subprocess_env
from tests.fakes.vllm_stats import ANSWER
from tests.gateway.conftest import _daphne

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.fixture
def private_chat(member_user):
    marker = f"secret-{uuid.uuid4().hex}"
    conversation = services.conversation_create(user=member_user, model="chat-model",
                                                system_prompt=f"system {marker}")
    services.chat_message_add(conversation=conversation, role="user", content=f"my diagnosis is {marker}")
    services.chat_message_add(conversation=conversation, role="assistant", content=f"about {marker}: rest")
    return conversation, marker


def test_an_admin_cannot_read_someone_elses_chat_by_page_api_or_django_admin(client, admin_user, private_chat):
    conversation, marker = private_chat
    client.force_login(admin_user)
    assert admin_user.is_portal_admin and admin_user.is_superuser
    # The chat page and its JSON endpoints answer as if the conversation did not exist.
    assert client.get(f"/chat/{conversation.pk}/").status_code == 404
    assert client.post(f"/chat/{conversation.pk}/messages/", {"role": "user", "content": "x"},
                       content_type="application/json").status_code == 404
    assert client.post(f"/chat/{conversation.pk}/delete/").status_code == 404
    own_page = client.get("/chat/").content.decode()
    assert marker not in own_page and "my diagnosis" not in own_page
    # Django admin has no table of conversations or messages, not even for a superuser.
    for path in ("/admin/gateway/conversation/", f"/admin/gateway/conversation/{conversation.pk}/change/",
                 "/admin/gateway/chatmessage/"):
        assert client.get(path).status_code == 404, path
    assert "conversation" not in client.get("/admin/").content.decode().lower()
    # The REST API has no conversation routes either.
    schema = client.get("/api/openapi.json").json()
    assert not [p for p in schema["paths"] if "conversation" in p or "chat" in p]
    # The admin's list shows owner and size, never the title or the text.
    page = client.get("/chat/manage/").content.decode()
    assert "mia" in page and "chat-model" in page
    assert marker not in page and "my diagnosis" not in page
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_an_admin_can_delete_a_chat_unread_and_a_member_cannot(client, admin_user, member_user, stranger,
                                                               private_chat):
    conversation, marker = private_chat
    client.force_login(stranger)
    assert client.get("/chat/manage/").status_code == 403
    assert client.post(f"/chat/manage/{conversation.pk}/delete/").status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    client.force_login(admin_user)
    response = client.post(f"/chat/manage/{conversation.pk}/delete/")
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not ChatMessage.objects.filter(content__contains=marker).exists()
    event = AuditEvent.objects.get(action="gateway.conversation.deleted")
    assert event.details == {"owner": "mia", "messages": 2}
    assert marker not in str(event.details) and marker not in event.target_id


def _text_fields(model) -> list[str]:
    return [f.name for f in model._meta.get_fields()
            if isinstance(f, models.CharField | models.TextField | models.JSONField) and f.concrete]


def _rows_containing(needle: str) -> list[str]:
    found = []
    for model in apps.get_models():
        for name in _text_fields(model):
            lookup = {f"{name}__icontains": needle}
            if model.objects.filter(**lookup).exists():
                found.append(f"{model._meta.label}.{name}")
    return found


def _redis_containing(needle: bytes) -> list[bytes]:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return [key for key in client.scan_iter() if needle in key or needle in (client.dump(key) or b"")]


def _send_marked(url: str, raw: str, marker: str) -> None:
    headers = {"Authorization": f"Bearer {raw}"}
    prompt = {"model": "chat-model", "messages": [{"role": "user", "content": f"please keep {marker} private"}],
              "max_tokens": 5}
    assert httpx.post(f"{url}/v1/chat/completions", headers=headers, json=prompt, timeout=30).status_code == 200
    with httpx.stream("POST", f"{url}/v1/chat/completions", headers=headers, json={**prompt, "stream": True},
                      timeout=30) as response:
        assert response.status_code == 200
        for _line in response.iter_lines():
            pass
    # Refused requests must not leave their text behind either.
    bad = {**prompt, "max_tokens": f"many {marker}"}
    assert httpx.post(f"{url}/v1/chat/completions", headers=headers, json=bad, timeout=30).status_code == 400
    assert httpx.post(f"{url}/v1/completions", headers=headers, json={"model": "chat-model", "prompt": marker,
                                                                       "max_tokens": 2}, timeout=30).status_code == 200


def test_a_default_run_stores_no_prompt_or_answer_anywhere(portal):
    user, raw = portal.member()
    marker = f"needle-{uuid.uuid4().hex}"
    _send_marked(portal.url, raw, marker)
    rows = portal.usage_rows(user, count=4)
    assert len(rows) == 4 and {r.status for r in rows} == {200, 400}  # the requests went through and were counted
    answer_words = ANSWER.split(".")[0][:40]  # the engine's answer text
    with portal.db():
        assert _rows_containing(marker) == []
        assert _rows_containing(answer_words) == []
    assert _redis_containing(marker.encode()) == []
    log = portal.server.log.read_text()
    assert marker not in log and answer_words not in log


def test_content_logging_when_turned_on_writes_prompts_and_answers_to_the_log(portal, tmp_path):
    """The positive control of the test above: the same search finds the text once the setting is on."""
    user, raw = portal.member()
    marker = f"needle-{uuid.uuid4().hex}"
    debug = _daphne(subprocess_env(PORTAL_CONTENT_LOGGING="1", PORTAL_USAGE_FLUSH_S="0.1"), tmp_path)
    try:
        _send_marked(debug.url, raw, marker)
        portal.usage_rows(user, count=4)
    finally:
        stop_process(debug.proc)
    log = debug.log.read_text()
    assert log.count(marker) >= 3
    assert "gateway.content: answer" in log and ANSWER.split(" ")[0] in log
    with portal.db():
        assert _rows_containing(marker) == []  # the database still holds counts only


def test_while_content_logging_is_on_every_usage_and_chat_page_says_so(client, member_user, admin_user):
    client.force_login(member_user)
    for path in ("/usage/", "/chat/"):
        assert 'id="content-logging-banner"' not in client.get(path).content.decode(), path
    with override_settings(PORTAL_CONTENT_LOGGING=True):
        for path in ("/usage/", "/chat/"):
            page = client.get(path).content.decode()
            assert 'id="content-logging-banner"' in page and "Content logging is on" in page, path
        client.force_login(admin_user)
        assert 'id="content-logging-banner"' in client.get("/usage/team/").content.decode()
