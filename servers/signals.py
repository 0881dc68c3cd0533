"""Worker start-up on a host: register the host's Node and heartbeat (worker_ready), reconcile the
host's engines so running servers are re-adopted, and follow their logs (worker_init, which every
worker sends, the CLI one and an embedded one alike)."""
from celery.signals import worker_init, worker_ready, worker_shutdown
from django.conf import settings

from sparkportal.celery import node_queue


def _consumes_node_queue(sender) -> bool:
    queues = getattr(getattr(sender, "app", None), "amqp", None)
    if queues is None:
        return False
    consumed = set(getattr(queues.queues, "consume_from", None) or queues.queues.keys())
    return node_queue(settings.NODE_NAME) in consumed


@worker_ready.connect
def _register_node(sender=None, **kwargs) -> None:
    from servers import services
    from servers.tasks import node_heartbeat_task

    consumed = set(sender.app.amqp.queues.keys()) if sender is not None else set()
    if node_queue(settings.NODE_NAME) not in consumed:
        return  # a worker for portal-wide queues only is not a node
    node = services.node_register(name=settings.NODE_NAME)
    node_heartbeat_task.apply_async(args=[node.name], queue=node.queue)


@worker_init.connect
def _adopt_and_follow(sender=None, **kwargs) -> None:
    from servers import logs, services
    from servers.tasks import server_reconcile_task

    if sender is None or not _consumes_node_queue(sender):
        return
    node = services.node_register(name=settings.NODE_NAME)
    server_reconcile_task.apply_async(args=[node.name, True], queue=node.queue)
    logs.pump_start(node.name)


@worker_shutdown.connect
def _stop_pump(sender=None, **kwargs) -> None:
    from servers import logs

    logs.pump_stop()
