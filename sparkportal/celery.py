"""The Celery app. Queues: `default` for portal-wide work, `node.<name>` for work on one host."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sparkportal.settings")

app = Celery("sparkportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

DEFAULT_QUEUE = "default"


def node_queue(node_name: str) -> str:
    return f"node.{node_name}"


def enqueue_on_node(task, node, *args, **options):
    """Send `task` (the task object) with positional `args` to the queue of `node` (a Node or its name).

    The one way work reaches a host: a process can only be started, signalled or read on its own host.
    `options` are apply_async's (countdown, expires, ...).
    """
    queue = node_queue(node) if isinstance(node, str) else node.queue
    return task.apply_async(args=list(args), queue=queue, **options)


def enqueue_default(task, *args, **options):
    """Send `task` with positional `args` to the portal-wide `default` queue."""
    return task.apply_async(args=list(args), queue=DEFAULT_QUEUE, **options)
