"""A person adds a catalog profile in the browser and watches its download reach 100%."""
import pytest

from models_registry.models import Download, ModelProfile
from tests.conftest import login
from tests.models_registry.conftest import RERANKER

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def test_an_operator_adds_a_catalog_profile_and_watches_the_download(hub, node, operator_user, celery_worker,
                                                                     asgi_server, page):
    login(page, asgi_server, "oscar")
    page.click("text=Models")
    page.click("text=Catalog")
    row = page.locator('[data-catalog="bge-reranker-v2-m3"]')
    assert "2.3 GB" in row.inner_text()
    row.locator("text=Add").click()
    page.wait_for_selector("h1:has-text('bge-reranker-v2-m3')")
    assert ModelProfile.objects.get(name="bge-reranker-v2-m3").engine == "tei"
    assert "text-embeddings-router --model-id BAAI/bge-reranker-v2-m3" in page.inner_text("#command-line")
    page.click("#download-button")
    page.wait_for_selector("text=queued on")
    page.wait_for_function("() => window.Live && window.Live.socket && window.Live.socket.readyState === 1")
    status = page.locator('[data-testid="download-status"]').first
    percent = page.locator('[data-testid="download-percent"]').first
    page.wait_for_function("""() => document.querySelector('[data-testid="download-status"]').textContent
                              === 'running'""", timeout=20000)
    seen = set()
    for _ in range(100):
        seen.add(percent.inner_text())
        if status.inner_text() == "done":
            break
        page.wait_for_timeout(100)
    assert status.inner_text() == "done"
    assert percent.inner_text() == "100%"
    assert len(seen) >= 2  # it moved in front of the person's eyes, without a reload
    download = Download.objects.get(repo_id=RERANKER)
    assert download.status == "done" and download.bytes_done == download.bytes_total
    page.reload()
    assert page.locator('[data-testid="download-status"]').first.inner_text() == "done"
