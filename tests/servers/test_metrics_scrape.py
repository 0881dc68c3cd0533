"""Scraping live servers' /metrics over real HTTP: samples stored, events published, a real worker's fan-out."""
import asyncio
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache

from nodes import services as node_services
from servers import events
from servers.metrics import services as metric_services
from servers.models import Server, ServerMetricSample
from servers.tasks import server_metrics_fanout_task

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "vllm"
T0 = (FIXTURES / "metrics_t0.txt").read_text()
T1 = (FIXTURES / "metrics_t1.txt").read_text()


class FakeMetricsEndpoint:
    """A loopback HTTP server answering GET /metrics with whatever body the test sets."""

    def __init__(self):
        endpoint = self
        self.body, self.status, self.hits = T0, 200, 0

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                endpoint.hits += 1
                data = endpoint.body.encode()
                self.send_response(endpoint.status if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=1.0.0; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def endpoint():
    ep = FakeMetricsEndpoint()
    yield ep
    ep.close()


@pytest.fixture
def fast_scrapes(settings):
    settings.PORTAL_METRICS_SCRAPE_SECONDS = 1.0
    cache.clear()  # snapshots and scrape claims of earlier tests


def make_server(port: int, *, status: str = Server.Status.READY, pid: int = 4242) -> Server:
    node = node_services.node_register(name=settings.NODE_NAME)
    return Server.objects.create(node=node, served_model_name="Qwen/Qwen3-8B", port=port, status=status, pid=pid)


def receive_after(group: str, action, timeout: float = 10.0) -> dict:
    """Join `group` on the channel layer, run `action` (in this thread, which holds the test's data), read one event."""
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    try:
        action()

        async def first():
            return await asyncio.wait_for(layer.receive(channel), timeout)

        return async_to_sync(first)()
    finally:
        async_to_sync(layer.group_discard)(group, channel)


@pytest.mark.django_db
def test_two_scrapes_store_the_interval_figures_and_publish_them(endpoint, fast_scrapes):
    server = make_server(endpoint.port)
    [first] = metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
    assert first.interval_s is None and first.generation_tps is None
    assert first.running == 16 and first.waiting == 2

    endpoint.body = T1
    time.sleep(1.05)  # past this node's scrape claim
    message = receive_after(events.metrics_group(server.pk),
                            lambda: metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME))
    second = ServerMetricSample.objects.filter(server=server).order_by("-at").first()
    assert 1.0 <= second.interval_s < 5.0
    assert second.generation_tps == pytest.approx(2057 / second.interval_s)
    assert second.prefix_cache_hit_rate == pytest.approx(1 / 3)
    assert second.ttft_mean_s == pytest.approx(1.274091, abs=1e-6)
    assert second.ttft_p95_s == pytest.approx(4.125)
    assert second.running == 14 and second.kv_cache_usage == pytest.approx(0.043377483443708606)
    assert message["event"] == "metrics.sample"
    data = message["data"]
    assert data["server_id"] == server.pk and data["at"] == second.at.isoformat()
    assert data["generation_tps"] == pytest.approx(second.generation_tps)
    assert data["e2e_p50_s"] == pytest.approx(12.5)
    assert endpoint.hits == 2


@pytest.mark.django_db
def test_a_second_scrape_within_the_period_is_skipped(endpoint, fast_scrapes):
    make_server(endpoint.port)
    assert len(metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)) == 1
    assert metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME) == []
    assert endpoint.hits == 1


@pytest.mark.django_db
def test_servers_that_are_not_ready_are_not_scraped(endpoint, fast_scrapes):
    ready = make_server(endpoint.port)
    other = FakeMetricsEndpoint()
    try:
        for status in (Server.Status.STOPPED, Server.Status.STARTING, Server.Status.FAILED):
            Server.objects.create(node=ready.node, served_model_name="other", port=other.port, status=status)
        samples = metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
    finally:
        other.close()
    assert [s.server_id for s in samples] == [ready.pk]
    assert other.hits == 0


@pytest.mark.django_db
def test_an_external_engine_is_scraped_too(endpoint, fast_scrapes):
    external = make_server(endpoint.port, status=Server.Status.EXTERNAL)
    [sample] = metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
    assert sample.server_id == external.pk


@pytest.mark.django_db
def test_an_engine_that_does_not_answer_is_logged_and_others_still_scraped(endpoint, fast_scrapes, caplog):
    broken = FakeMetricsEndpoint()
    broken.status = 500
    dead_port = broken.port
    try:
        ok = make_server(endpoint.port)
        failing = make_server(broken.port, pid=1)
        with caplog.at_level(logging.INFO, logger="servers.metrics.services"):
            samples = metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
    finally:
        broken.close()
    assert [s.server_id for s in samples] == [ok.pk]
    assert f"metrics of server {failing.pk} not scraped: http://127.0.0.1:{dead_port}/metrics answered HTTP 500" \
        in caplog.text

    cache.clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="servers.metrics.services"):
        metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
    assert f"http://127.0.0.1:{dead_port}/metrics could not be reached: ConnectError" in caplog.text


@pytest.mark.django_db
def test_a_body_that_is_not_prometheus_text_stores_nothing(endpoint, fast_scrapes, caplog):
    server = make_server(endpoint.port)
    endpoint.body = "<html>not metrics</html>\n"
    with caplog.at_level(logging.WARNING, logger="servers.metrics.services"):
        assert metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME) == []
    assert f"metrics of server {server.pk} unreadable" in caplog.text
    assert not ServerMetricSample.objects.exists()


def test_the_beat_fanout_reaches_the_node_queue_of_a_real_worker(endpoint, fast_scrapes, celery_worker):
    server = make_server(endpoint.port)
    server_metrics_fanout_task.delay()
    deadline = time.monotonic() + 20
    while not ServerMetricSample.objects.filter(server=server).exists():
        assert time.monotonic() < deadline, "the node's worker did not scrape within 20 s"
        time.sleep(0.1)
    assert ServerMetricSample.objects.get(server=server).running == 16


@pytest.mark.django_db
def test_figures_of_the_fake_vllm_follow_the_requests_it_served(fast_scrapes):
    from tests.servers.test_fake_vllm import Fake

    engine = Fake("--served-model-name", "qwen", env={"FAKE_VLLM_TOKEN_DELAY_S": "0.01"})
    try:
        engine.wait_ready()
        server = make_server(engine.port, pid=engine.proc.pid)
        metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
        generated = 0
        for prompt in ("Say hello", "Say hello again", "Count to three"):
            answer = httpx.post(f"{engine.url}/v1/completions",
                                json={"model": "qwen", "prompt": prompt, "max_tokens": 6}, timeout=10).json()
            generated += answer["usage"]["completion_tokens"]
        time.sleep(1.05)  # past this node's scrape claim
        [sample] = metric_services.server_metrics_scrape_node(node_name=settings.NODE_NAME)
    finally:
        engine.close()
    assert generated == 18
    assert sample.generation_tps == pytest.approx(generated / sample.interval_s)
    assert sample.requests_per_s == pytest.approx(3 / sample.interval_s)
    assert sample.ttft_mean_s is not None and sample.e2e_mean_s >= 5 * 0.01
    assert sample.itl_mean_s == pytest.approx(0.01, abs=0.02)
    assert sample.running == 0 and sample.waiting == 0
    assert server.metric_samples.count() == 2
