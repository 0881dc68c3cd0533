"""Headless Chromium against a real daphne: login, live dashboard, API key shown once."""
import pytest
from django.conf import settings

from nodes import services as node_services
from nodes.tasks import node_heartbeat_task
from sparkportal.celery import node_queue
from tests.conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_dashboard_shows_live_node_figures(asgi_server, celery_worker, page, member_user):
    node = node_services.node_register(name=settings.NODE_NAME)
    login(page, asgi_server, "mia")
    card = page.locator(f'[data-node="{node.name}"]')
    cpu = card.locator('[data-fig="cpu"]')
    assert cpu.inner_text() == "—"
    page.wait_for_function("() => window.Live && window.Live.socket && window.Live.socket.readyState === 1")
    page.wait_for_timeout(300)  # the subscription is confirmed right after the socket opens
    node_heartbeat_task.apply_async(args=[node.name], queue=node_queue(node.name))
    page.wait_for_function(
        f"""() => document.querySelector('[data-node="{node.name}"] [data-fig="cpu"]').textContent.includes('%')""")
    assert "GB free" in card.locator('[data-fig="disk"]').inner_text()
    assert card.locator('[data-fig="gpus"]').inner_text() == "no GPU"
    first_update = card.locator('[data-fig="updated"]').inner_text()
    points = page.evaluate("() => Chart.getChart(document.querySelector('canvas')).data.labels.length")
    page.wait_for_timeout(1100)
    node_heartbeat_task.apply_async(args=[node.name], queue=node_queue(node.name))
    page.wait_for_function(
        f"""() => document.querySelector('[data-node="{node.name}"] [data-fig="updated"]').textContent
              !== {first_update!r}""")
    assert page.evaluate("() => Chart.getChart(document.querySelector('canvas')).data.labels.length") == points + 1


def test_api_key_is_shown_only_once(asgi_server, page, member_user):
    login(page, asgi_server, "mia")
    page.click("text=Keys")
    page.fill("input[name=name]", "my-ide")
    page.click("text=Create key")
    secret = page.locator("#new-key-secret").inner_text()
    assert secret.startswith("sk-sp-")
    assert page.locator("#key-table").inner_text().count("my-ide") == 1
    page.reload()
    assert page.locator("#new-key-secret").count() == 0
    assert secret not in page.content()
    assert "sk-sp-" in page.locator("#key-table").inner_text()  # only the prefix is listed


def test_wrong_password_in_the_browser_says_so(asgi_server, page, member_user):
    page.goto(f"{asgi_server.url}/accounts/login/")
    page.fill("input[name=username]", "mia")
    page.fill("input[name=password]", "nope")
    page.click("button[type=submit]")
    assert "Please enter a correct username and password" in page.locator("[role=alert]").inner_text()
