"""GET /api/servers/{id}/metrics: a server's engine-metric history, with a key or a session."""
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts import services as account_services
from nodes import services as node_services
from servers.models import Server, ServerMetricSample

pytestmark = pytest.mark.django_db


@pytest.fixture
def server():
    node = node_services.node_register(name="spark-1")
    return Server.objects.create(node=node, served_model_name="qwen", port=8001, status="ready")


def test_history_is_oldest_first_and_filtered_by_time(server, member_user):
    now = timezone.now()
    ServerMetricSample.objects.create(server=server, at=now - timedelta(hours=3), resolution_s=60, generation_tps=1.0)
    ServerMetricSample.objects.create(server=server, at=now - timedelta(seconds=10), interval_s=5.0,
                                      generation_tps=205.7, kv_cache_usage=0.0434, ttft_p95_s=4.125)
    ServerMetricSample.objects.create(server=server, at=now, interval_s=5.0, generation_tps=210.0)
    _key, raw = account_services.api_key_create(owner=member_user, name="grafana")
    client = Client(headers={"Authorization": f"Bearer {raw}"})

    rows = client.get(f"/api/servers/{server.pk}/metrics").json()
    assert [r["generation_tps"] for r in rows] == [1.0, 205.7, 210.0]
    assert rows[0]["resolution_s"] == 60 and rows[1]["resolution_s"] == 0
    assert rows[1]["ttft_p95_s"] == 4.125 and rows[1]["kv_cache_usage"] == 0.0434 and rows[1]["ttft_p50_s"] is None

    since = (now - timedelta(minutes=1)).isoformat()
    recent = client.get(f"/api/servers/{server.pk}/metrics", {"since": since, "limit": 1}).json()
    assert [r["generation_tps"] for r in recent] == [210.0]


def test_a_browser_session_may_read_it(server, member_user):
    client = Client()
    client.force_login(member_user)
    assert client.get(f"/api/servers/{server.pk}/metrics").json() == []


def test_errors_say_what_is_wrong(server, member_user):
    assert Client().get(f"/api/servers/{server.pk}/metrics").status_code == 401
    client = Client()
    client.force_login(member_user)
    missing = client.get("/api/servers/999999/metrics")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    bad = client.get(f"/api/servers/{server.pk}/metrics", {"limit": 0})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][-1] == "limit"
    assert "greater than or equal to 1" in bad.json()["detail"][0]["msg"]
