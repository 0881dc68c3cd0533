"""The Celery app. Queues: `default` for portal-wide work, `node.<name>` for work on one host."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")

app = Celery("sparkportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def node_queue(node_name: str) -> str:
    return f"node.{node_name}"
