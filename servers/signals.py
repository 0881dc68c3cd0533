"""Worker start-up on a host: register the host's Node and heartbeat (worker_ready); while a worker
of the node's queue runs, reconcile the host's engines at its start (re-adopting what still runs) and
follow their logs (a worker bootstep, so every worker has it: the CLI one and an embedded one)."""
from celery import bootsteps
from celery.signals import worker_ready
from django.conf import settings
from django.db import connection

from sparkportal.celery import app, node_queue


@worker_ready.connect
def _register_node(sender=None, **kwargs) -> None:
    from servers import services
    from servers.tasks import node_heartbeat_task

    consumed = set(sender.app.amqp.queues.keys()) if sender is not None else set()
    if node_queue(settings.NODE_NAME) not in consumed:
        return  # a worker for portal-wide queues only is not a node
    node = services.node_register(name=settings.NODE_NAME)
    node_heartbeat_task.apply_async(args=[node.name], queue=node.queue)
    # The worker's own thread does no more database work: an idle connection kept for the worker's
    # lifetime would block dropping the database and count against max_connections.
    connection.close()


class NodeSupervisorStep(bootsteps.StartStopStep):
    """Reconcile at start and run the log pump for the worker's lifetime."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.enabled = node_queue(settings.NODE_NAME) in set(worker.app.amqp.queues.consume_from or {})

    def start(self, worker) -> None:
        from servers import logs, services
        from servers.tasks import server_reconcile_task

        node = services.node_register(name=settings.NODE_NAME)
        server_reconcile_task.apply_async(args=[node.name, True], queue=node.queue)
        connection.close()  # this thread's last query until shutdown (see _register_node)
        logs.pump_start(node.name)

    def stop(self, worker) -> None:
        from servers import logs

        logs.pump_stop()

    shutdown = stop


app.steps["worker"].add(NodeSupervisorStep)
