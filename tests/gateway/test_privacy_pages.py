"""In the browser: an admin finds a member's chat in the Conversations list, cannot open it, deletes it unread."""
import uuid

import pytest

from tests.conftest import login

pytestmark = pytest.mark.django_db(transaction=True, reset_sequences=True)


@pytest.mark.browser
def test_an_admin_deletes_a_members_chat_without_seeing_it(portal, browser):
    from gateway.models import Conversation

    member, _raw = portal.member()
    admin, _raw = portal.member(role="admin")
    marker = f"private-{uuid.uuid4().hex[:12]}"

    mine = browser.new_context()
    mine.set_default_timeout(15000)
    page = mine.new_page()
    login(page, portal.server, member.username)
    page.goto(f"{portal.url}/chat/")
    page.select_option("#chat-model", "chat-model")
    page.fill("#chat-input", f"Keep this between us: {marker}")
    page.click("#chat-send")
    page.locator(".msg-assistant[data-done='1']").wait_for()
    page.wait_for_function("() => location.pathname.match(/^\\/chat\\/\\d+\\/$/)")
    chat_url = page.url
    mine.close()

    theirs = browser.new_context()
    theirs.set_default_timeout(15000)
    page = theirs.new_page()
    login(page, portal.server, admin.username)
    page.click("text=Conversations")
    row = page.locator("#conversations-manage tbody tr", has_text=member.username)
    assert row.count() == 1 and "chat-model" in row.inner_text()
    assert marker not in page.content() and "Keep this between us" not in page.content()
    # Opening it by its address is a 404 for anyone but its owner.
    response = page.goto(chat_url)
    assert response.status == 404 and marker not in page.content()
    page.goto(f"{portal.url}/chat/manage/")
    page.once("dialog", lambda dialog: dialog.accept())
    their_row = page.locator("#conversations-manage tbody tr", has_text=member.username)
    their_row.locator("button", has_text="Delete").click()
    page.wait_for_selector(f"text=Deleted a conversation of {member.username}")
    assert page.locator("#conversations-manage tbody tr", has_text=member.username).count() == 0
    theirs.close()
    with portal.db():
        assert not Conversation.objects.filter(user=member).exists()
