"""Health of the pieces the portal needs: database, Redis, at least one Celery worker."""
import redis
from django.conf import settings
from django.db import connection

from sparkportal.celery import app as celery_app

VERSION = "0.1.0"


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return f"error: {exc}"


def _redis() -> str:
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception as exc:  # noqa: BLE001
        return f"error: {exc}"


def _workers(timeout: float) -> list[dict]:
    try:
        replies = celery_app.control.ping(timeout=timeout)
    except Exception:  # noqa: BLE001
        return []
    workers = []
    for reply in replies:
        for name in reply:
            workers.append({"name": name, "status": "ok"})
    return sorted(workers, key=lambda w: w["name"])


def health_report(*, worker_timeout: float = 1.0) -> dict:
    db = _database()
    rds = _redis()
    workers = _workers(worker_timeout) if rds == "ok" else []
    ok = db == "ok" and rds == "ok" and bool(workers)
    return {"status": "ok" if ok else "degraded", "database": db, "redis": rds, "workers": workers}
