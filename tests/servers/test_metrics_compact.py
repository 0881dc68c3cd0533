"""Retention of engine metric samples: raw rows averaged per minute after an hour, all gone after 7 days."""
from datetime import UTC, datetime, timedelta

import pytest

from nodes import services as node_services
from servers.metrics import selectors as metric_selectors
from servers.metrics import services as metric_services
from servers.models import Server, ServerMetricSample

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def server():
    node = node_services.node_register(name="spark-1")
    return Server.objects.create(node=node, served_model_name="m", port=8001, status="ready")


def sample(server, at, **figures):
    return ServerMetricSample.objects.create(server=server, at=at, **figures)


def test_raw_samples_older_than_an_hour_become_one_row_per_minute(server):
    minute = NOW - timedelta(hours=2)
    sample(server, minute + timedelta(seconds=5), interval_s=5.0, generation_tps=100.0, ttft_mean_s=None, running=2)
    sample(server, minute + timedelta(seconds=20), interval_s=15.0, generation_tps=200.0, ttft_mean_s=1.0, running=4)
    sample(server, minute + timedelta(seconds=65), interval_s=5.0, generation_tps=50.0)
    recent = sample(server, NOW - timedelta(minutes=10), interval_s=5.0, generation_tps=300.0)

    result = metric_services.server_metric_samples_compact(now=NOW)

    assert result == {"expired": 0, "downsampled": 3, "minutes": 2}
    first, second, kept = metric_selectors.server_metric_history(server=server)
    assert (first.at, first.resolution_s, first.interval_s) == (minute, 60, 20.0)
    assert first.generation_tps == pytest.approx((100 * 5 + 200 * 15) / 20)  # weighted by interval
    assert first.ttft_mean_s == 1.0  # an interval without a figure does not dilute it
    assert first.running == pytest.approx((2 * 5 + 4 * 15) / 20)
    assert (second.at, second.generation_tps) == (minute + timedelta(minutes=1), 50.0)
    assert kept.pk == recent.pk and kept.resolution_s == 0


def test_compacting_twice_changes_nothing_more(server):
    sample(server, NOW - timedelta(hours=2), interval_s=5.0, generation_tps=10.0)
    metric_services.server_metric_samples_compact(now=NOW)
    assert metric_services.server_metric_samples_compact(now=NOW) == {"expired": 0, "downsampled": 0, "minutes": 0}
    assert ServerMetricSample.objects.get().resolution_s == 60


def test_samples_older_than_the_retention_are_deleted(server, settings):
    settings.PORTAL_METRICS_RETENTION_DAYS = 7
    sample(server, NOW - timedelta(days=8), resolution_s=60, generation_tps=1.0)
    sample(server, NOW - timedelta(days=6), resolution_s=60, generation_tps=2.0)
    result = metric_services.server_metric_samples_compact(now=NOW)
    assert result["expired"] == 1
    assert list(ServerMetricSample.objects.values_list("generation_tps", flat=True)) == [2.0]


def test_chart_points_are_the_last_120_oldest_first(server):
    for i in range(130):
        sample(server, NOW - timedelta(seconds=5 * (130 - i)), generation_tps=float(i))
    points = metric_selectors.server_metric_points(server=server)
    assert len(points) == 120
    assert points[0]["generation_tps"] == 10.0 and points[-1]["generation_tps"] == 129.0
    assert points[-1]["server_id"] == server.pk and points[-1]["at"] == (NOW - timedelta(seconds=5)).isoformat()
