"""A worker that consumes this host's node queue registers the host's Node and sends a first heartbeat."""
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection

from sparkportal.celery import enqueue_on_node, node_queue


@worker_ready.connect
def _register_node(sender=None, **kwargs) -> None:
    from nodes import services
    from nodes.tasks import node_heartbeat_task

    consumed = set(sender.app.amqp.queues.keys()) if sender is not None else set()
    if node_queue(settings.NODE_NAME) not in consumed:
        return  # a worker for portal-wide queues only is not a node
    node = services.node_register(name=settings.NODE_NAME)
    enqueue_on_node(node_heartbeat_task, node, node.name)
    # The worker's own thread does no more database work: an idle connection kept for the worker's
    # lifetime would block dropping the database and count against max_connections.
    connection.close()
