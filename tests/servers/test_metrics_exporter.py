"""The portal's own Prometheus exporter at GET /metrics."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from nodes import services as node_services
from servers.models import Server, ServerMetricSample

pytestmark = pytest.mark.django_db


def scrape(client: Client, **headers) -> dict:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}


@pytest.fixture
def node():
    node = node_services.node_register(name="spark-1")
    node.host_facts = {"ram_used_gb": 40.0, "ram_total_gb": 119.7}
    node.gpu_facts = [{"index": 0, "name": "NVIDIA H200", "memory_used_gb": 0.6, "memory_total_gb": 140.4,
                       "temperature_c": 38, "power_w": 80.8, "utilization_pct": 25, "unified_memory": False}]
    node.last_heartbeat_at = timezone.now()
    node.save()
    return node


def test_it_exports_server_figures_states_and_node_memory(node):
    ready = Server.objects.create(node=node, served_model_name="qwen-coder", port=8001, status="ready",
                                  gpu_memory_utilization=0.4)
    Server.objects.create(node=node, served_model_name="old", port=8002, status="stopped",
                          gpu_memory_utilization=0.3)
    ServerMetricSample.objects.create(server=ready, at=timezone.now() - timedelta(seconds=30), generation_tps=1.0)
    ServerMetricSample.objects.create(server=ready, at=timezone.now(), interval_s=5.0, generation_tps=205.7,
                                      ttft_mean_s=1.27, ttft_p95_s=4.125, kv_cache_usage=0.0434, running=14)
    values = scrape(Client())
    labels = (("model", "qwen-coder"), ("node", "spark-1"), ("server", str(ready.pk)))
    assert values[("sparkportal_server_generation_tokens_per_second", labels)] == 205.7
    assert values[("sparkportal_server_ttft_seconds", tuple(sorted(labels + (("stat", "p95"),))))] == 4.125
    assert values[("sparkportal_server_kv_cache_usage_ratio", labels)] == 0.0434
    assert values[("sparkportal_server_requests_running", labels)] == 14
    assert ("sparkportal_server_ttft_seconds", tuple(sorted(labels + (("stat", "p50"),)))) not in values  # None
    assert values[("sparkportal_server_status", tuple(sorted(labels + (("status", "ready"),))))] == 1
    assert values[("sparkportal_server_status", tuple(sorted(labels + (("status", "stopped"),))))] == 0
    assert values[("sparkportal_node_gpu_memory_planned_ratio", (("node", "spark-1"),))] == 0.4
    assert values[("sparkportal_node_gpu_memory_budget_ratio", (("node", "spark-1"),))] == 0.85
    gpu = (("gpu", "0"), ("name", "NVIDIA H200"), ("node", "spark-1"))
    assert values[("sparkportal_node_gpu_memory_total_bytes", gpu)] == pytest.approx(140.4 * 1024**3)
    assert values[("sparkportal_node_gpu_utilization_ratio", gpu)] == 0.25
    assert values[("sparkportal_node_ram_total_bytes", (("node", "spark-1"),))] == pytest.approx(119.7 * 1024**3)


def test_a_stale_sample_is_not_exported_as_a_current_rate(node):
    server = Server.objects.create(node=node, served_model_name="m", port=8001, status="ready")
    ServerMetricSample.objects.create(server=server, at=timezone.now() - timedelta(minutes=5), generation_tps=99.0)
    values = scrape(Client())
    assert not any(name == "sparkportal_server_generation_tokens_per_second" for name, _ in values)


def test_a_unified_memory_gpu_exports_no_memory_figures(node):
    node.gpu_facts = [{"index": 0, "name": "NVIDIA GB10", "memory_used_gb": None, "memory_total_gb": None,
                       "temperature_c": 47, "power_w": 11.85, "utilization_pct": 3, "unified_memory": True}]
    node.save()
    values = scrape(Client())
    assert not any(name.startswith("sparkportal_node_gpu_memory_") and name.endswith("_bytes") for name, _ in values)
    assert values[("sparkportal_node_gpu_power_watts", (("gpu", "0"), ("name", "NVIDIA GB10"), ("node", "spark-1")))] \
        == 11.85


def test_a_configured_token_is_required(settings, node):
    settings.PORTAL_PROMETHEUS_TOKEN = "prom-secret-1"
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response.content.decode() == ("Send `Authorization: Bearer <PORTAL_PROMETHEUS_TOKEN>` to read the "
                                         "portal's metrics (bearer_token in the Prometheus scrape config).\n")
    assert Client().get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert ("sparkportal_node_gpu_memory_budget_ratio", (("node", "spark-1"),)) in scrape(
        Client(), Authorization="Bearer prom-secret-1")
