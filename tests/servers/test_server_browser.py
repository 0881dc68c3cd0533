"""A person starts a server in the browser, watches its log stream in, and stops it."""
import pytest

from tests.conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_start_watch_the_log_stream_and_stop(asgi_server, celery_worker, page, node, make_profile, operator_user):
    make_profile("coder", extra_env={"FAKE_VLLM_STARTUP_DELAY_S": "1.0", "FAKE_VLLM_LOG_LINES_PER_S": "40"})
    login(page, asgi_server, "oscar")
    page.goto(f"{asgi_server.url}/servers/")
    page.select_option("select[name=profile]", "coder")
    page.wait_for_selector('[data-plan-ok="yes"]')
    assert "Budget on" in page.locator("#plan").inner_text()
    page.click("#start-form button[type=submit]")
    page.wait_for_url("**/servers/*/")
    page.wait_for_function("() => window.Live && Live.socket && Live.socket.readyState === 1")

    page.wait_for_selector('[data-status="ready"]', timeout=30000)
    page.wait_for_function("() => document.getElementById('log').textContent.includes('DEBUG line')")
    assert int(page.locator("[data-log-count]").inner_text()) > 0
    log_text = page.locator("#log").inner_text()
    assert "vLLM server version 0.33.0" in log_text

    page.click('[data-action="stop"]')
    page.wait_for_selector('[data-status="stopped"]', timeout=30000)
    assert "SIGTERM: exited" in page.locator("[data-reason]").inner_text()
