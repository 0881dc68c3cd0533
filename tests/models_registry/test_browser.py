"""A person adds a catalog profile in the browser and watches its download reach 100%."""
import threading

import pytest
from playwright.sync_api import expect

from models_registry.models import Download, ModelProfile
from tests.conftest import login
from tests.models_registry.conftest import RERANKER, TINY, finished, wait_for

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
    # Looking the repo up answers at once while the hub takes its time; the estimate updates live.
    assert "catalog" in page.inner_text('[data-testid="weights-estimate"]')
    hub.repos[RERANKER].mode = "stall_api"
    page.click("#lookup-button")
    page.wait_for_selector("text=the estimate below updates when the hub answers")
    assert page.get_attribute('[data-testid="lookup-status"]', "data-status") in ("queued", "running")
    page.wait_for_function("() => window.Live && window.Live.socket && window.Live.socket.readyState === 1")
    hub.repos[RERANKER].mode = "ok"
    hub.release_stall.set()
    page.wait_for_selector('[data-testid="lookup-status"][data-status="done"]')
    assert "hub" in page.inner_text('[data-testid="weights-estimate"]')
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


def test_the_weights_page_lists_each_node_live_and_deletes_after_confirmation(hub, node, operator_user, celery_worker,
                                                                            asgi_server, page):
    from models_registry import services
    from models_registry.models import NodeWeights
    from nodes.models import Node

    def prepare():  # the services publish events, which cannot run on Playwright's event loop thread
        download, _ = services.download_request(actor=operator_user, node=node, repo_id=TINY)
        assert wait_for(lambda: finished(download.pk)).status == "done"
        wait_for(lambda: NodeWeights.objects.filter(node=node, scanned_at__isnull=False).exists())  # its rescan
        NodeWeights.objects.all().delete()  # nothing listed yet: the page must fetch the list itself
        Node.objects.create(name="gpu2", queue="node.gpu2")  # a node whose worker is down

    thread = threading.Thread(target=prepare)
    thread.start()
    thread.join(30)
    login(page, asgi_server, "oscar")
    page.goto(f"{asgi_server.url}/models/weights/")
    row = page.locator(f'[data-weights-node="{node.name}"] tr[data-repo="{TINY}"]')
    row.wait_for(timeout=30_000)  # the local worker's scan arrived over the websocket
    assert "no profile uses this" in row.inner_text()
    assert "GB free of" in page.inner_text(f"#weights-{node.name}")
    page.wait_for_selector("#weights-gpu2 >> text=Asking gpu2's worker for a fresh list")
    assert "Waiting for gpu2's worker." in page.inner_text("#weights-gpu2")
    row.locator("input[name=confirm]").fill("acme/tiny")
    row.locator("text=Delete weights").click()
    page.wait_for_selector(f"text=To delete the weights of {TINY}, confirm by typing the repo id exactly.")
    row = page.locator(f'[data-weights-node="{node.name}"] tr[data-repo="{TINY}"]')
    row.locator("input[name=confirm]").fill(TINY)
    row.locator("text=Delete weights").click()
    page.wait_for_selector(f"text=Deleting the weights of {TINY} on {node.name}")
    page.wait_for_selector(f"#weights-{node.name} >> text=Nothing downloaded on {node.name}.")
    # The list and the deletion's outcome arrive as separate events: wait for the outcome itself.
    expect(page.locator(f'#weights-{node.name} [data-testid="deletions"]')).to_contain_text(
        f"delete {TINY}: done, 3.1\xa0MB freed", timeout=15_000)
