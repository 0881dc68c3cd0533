"""Headless Chromium: the getting-started checklist, a disabled Start with its link, a member's refusal page,
and /api/docs rendering with every request outside the portal blocked."""
from urllib.parse import urlparse

import pytest

from models_registry.models import ModelProfile
from nodes.models import Node
from tests.conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_the_checklist_offers_a_key_in_one_click_and_moves_on(asgi_server, page, member_user):
    login(page, asgi_server, "mia")
    checklist = page.locator("#getting-started")
    checklist.wait_for()
    assert checklist.get_attribute("data-next") == "node"
    page.locator('[data-step="key"] [data-next-action]').click()
    assert page.locator("#new-key-secret").inner_text().startswith("sk-sp-")
    page.goto(f"{asgi_server.url}/")
    assert page.locator('#getting-started [data-step="key"]').get_attribute("data-done") == "yes"


def test_start_is_disabled_with_the_reason_and_a_link_to_the_node(asgi_server, page, admin_user):
    node = Node.objects.create(name="spark1", queue="node.spark1", host_facts={
        "engines": {"vllm": {"executable": "/opt/vllm/bin/vllm", "found": False, "version": ""}}})
    ModelProfile.objects.create(name="coder", repo_id="Qwen/Qwen3-0.6B")
    login(page, asgi_server, "alice")
    page.goto(f"{asgi_server.url}/servers/")
    page.select_option("select[name=profile]", "coder")
    page.wait_for_selector('#plan [data-verdict="refused"]')
    button = page.locator("#start-button")
    assert button.is_disabled()
    assert "vLLM is not installed on node spark1" in button.get_attribute("title")
    page.locator("#plan [data-fix-link] a").click()
    page.wait_for_url(f"{asgi_server.url}/admin/nodes/node/{node.pk}/change/")


def test_a_member_sees_the_refusal_inside_the_layout(asgi_server, page, member_user):
    login(page, asgi_server, "mia")
    response = page.goto(f"{asgi_server.url}/models/new/")
    assert response.status == 403
    assert page.locator("nav.topnav").is_visible()
    assert page.locator("[role=alert]").inner_text() == \
        "Only operators and admins may do this: ask an admin for the operator role."


def test_api_docs_render_without_network(asgi_server, page):
    outside = []

    def only_the_portal(route):
        if urlparse(route.request.url).hostname == "127.0.0.1":
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    page.route("**/*", only_the_portal)
    page.goto(f"{asgi_server.url}/api/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Spark Portal API" in page.locator(".swagger-ui .info .title").inner_text()
    page.wait_for_selector(".opblock-tag")
    assert outside == []
