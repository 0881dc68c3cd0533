"""A worker that starts on a host registers that host's Node, sends a first heartbeat, reconciles
the host's engines (re-adopting what still runs) and follows their logs."""
from celery.signals import worker_ready, worker_shutdown
from django.conf import settings

from sparkportal.celery import node_queue


@worker_ready.connect
def _register_node(sender=None, **kwargs) -> None:
    from servers import logs, services
    from servers.tasks import node_heartbeat_task, server_reconcile_task

    consumed = set(sender.app.amqp.queues.keys()) if sender is not None else set()
    if node_queue(settings.NODE_NAME) not in consumed:
        return  # a worker for portal-wide queues only is not a node
    node = services.node_register(name=settings.NODE_NAME)
    node_heartbeat_task.apply_async(args=[node.name], queue=node.queue)
    server_reconcile_task.apply_async(args=[node.name, True], queue=node.queue)
    logs.pump_start(node.name)


@worker_shutdown.connect
def _stop_pump(sender=None, **kwargs) -> None:
    from servers import logs

    logs.pump_stop()
