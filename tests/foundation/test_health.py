import pytest
from django.test import Client

pytestmark = pytest.mark.django_db(transaction=True)


def test_health_is_503_degraded_without_a_worker():
    response = Client().get("/api/health")
    assert response.status_code == 503
    body = response.json()
    assert body == {"status": "degraded", "database": "ok", "redis": "ok", "workers": []}


def test_health_is_200_with_database_redis_and_a_worker(celery_worker):
    response = Client().get("/api/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "ok"
    assert body["workers"] and body["workers"][0]["status"] == "ok"
