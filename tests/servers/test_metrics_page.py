"""The engine-metrics partial in headless Chromium: starting points from the database, then live samples."""
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from nodes import services as node_services
from servers.metrics import services as metric_services
from servers.models import Server, ServerMetricSample
from tests.conftest import login

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vllm"


def record(server, name: str, at) -> None:
    """Record a scrape as the node's worker does, off this thread (Playwright's event loop runs on it)."""
    text = (FIXTURES / name).read_text()

    def run():
        try:
            metric_services.server_metrics_record(server=server, text=text, received_at=at)
        finally:
            connection.close()  # the thread's own connection; left open it would outlive the test database

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def test_the_charts_start_from_stored_samples_and_follow_live_ones(asgi_server, page, member_user):
    cache.clear()
    node = node_services.node_register(name="spark-1")
    server = Server.objects.create(node=node, served_model_name="Qwen/Qwen3-8B", port=8001, status="ready", pid=77)
    start = timezone.now() - timedelta(seconds=10)
    record(server, "metrics_t0.txt", start)
    page.add_init_script("window.__joined = []; window.addEventListener('subscribe-ok', "
                         "(e) => window.__joined.push(e.detail.group));")
    login(page, asgi_server, "mia")
    page.goto(f"{asgi_server.url}/servers/{server.pk}/metrics/")
    section = page.locator(f'[data-server-metrics="{server.pk}"]')
    assert section.get_attribute("data-points") == "1"
    assert section.locator('[data-figure="requests"]').inner_text() == "— · 16 running · 2 waiting"
    assert section.locator('[data-figure="kv_cache_usage"]').inner_text() == "4.9 %"
    page.wait_for_function(f"() => window.__joined.includes('servers.metrics.{server.pk}')")

    record(server, "metrics_t1.txt", start + timedelta(seconds=10))

    page.wait_for_function(f"""() => document.querySelector('[data-server-metrics="{server.pk}"]')
                                   .dataset.points === '2'""")
    assert section.locator('[data-figure="generation_tps"]').inner_text() == "205.7 tok/s"
    assert section.locator('[data-figure="prompt_tps"]').inner_text() == "1075.2 tok/s"
    assert section.locator('[data-figure="ttft"]').inner_text() == "1274 ms / 4125 ms"
    assert section.locator('[data-figure="tpot_mean_s"]').inner_text() == "78.5 ms"
    assert section.locator('[data-figure="prefix_cache_hit_rate"]').inner_text() == "33.3 %"
    assert section.locator('[data-figure="kv_cache_usage"]').inner_text() == "4.3 %"
    charted = page.evaluate(f"""() => Object.fromEntries(Object.entries(window.ServerMetrics.charts[{server.pk}])
                                 .map(([name, chart]) => [name, chart.data.datasets.map((d) => d.data)]))""")
    assert charted["throughput"] == [[None, pytest.approx(205.7)], [None, pytest.approx(1075.2)]]
    assert charted["latency"][0] == [None, pytest.approx(1274.091, abs=1e-3)]
    assert charted["cache"] == [[pytest.approx(4.8758, abs=1e-4), pytest.approx(4.3377, abs=1e-4)],
                                [None, pytest.approx(33.333, abs=1e-3)]]
    assert page.locator("[data-metrics-empty]").is_hidden()


def test_a_server_without_samples_says_why_the_charts_are_empty(asgi_server, page, member_user):
    node = node_services.node_register(name="spark-1")
    server = Server.objects.create(node=node, served_model_name="m", port=8002, status="starting")
    login(page, asgi_server, "mia")
    page.goto(f"{asgi_server.url}/servers/{server.pk}/metrics/")
    assert page.locator("[data-metrics-empty]").inner_text() == (
        "No samples yet: figures appear once the server is ready and its /metrics has been scraped.")
    assert page.locator('[data-figure="generation_tps"]').inner_text() == "—"


def test_the_history_chart_shows_the_chosen_span(asgi_server, page, member_user):
    node = node_services.node_register(name="spark-1")
    server = Server.objects.create(node=node, served_model_name="m", port=8003, status="ready")
    now = timezone.now()
    ServerMetricSample.objects.bulk_create(
        [ServerMetricSample(server=server, at=now - timedelta(days=3, minutes=i), resolution_s=60, generation_tps=5.0)
         for i in range(3)]
        + [ServerMetricSample(server=server, at=now - timedelta(hours=5, minutes=i), resolution_s=60,
                              generation_tps=50.0, ttft_mean_s=0.2) for i in range(4)]
        + [ServerMetricSample(server=server, at=now - timedelta(seconds=5 * i), interval_s=5.0, generation_tps=100.0)
           for i in range(2)])
    login(page, asgi_server, "mia")
    page.goto(f"{asgi_server.url}/servers/{server.pk}/metrics/")
    history = page.locator("[data-metrics-history]")
    page.wait_for_function("() => document.querySelector('[data-metrics-history]').dataset.loaded === '6'")
    assert history.locator("[data-history-status]").inner_text() == "6 samples"
    page.select_option("select[name=span]", "168")
    page.wait_for_function("() => document.querySelector('[data-metrics-history]').dataset.loaded === '9'")
    page.select_option("select[name=span]", "1")
    page.wait_for_function("() => document.querySelector('[data-metrics-history]').dataset.loaded === '2'")
    data = page.evaluate("() => Chart.getChart(document.querySelector('[data-metrics-history] canvas'))"
                         ".data.datasets.map((d) => d.data)")
    assert data == [[100.0, 100.0], [None, None], [None, None]]
