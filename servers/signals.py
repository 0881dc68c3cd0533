"""Worker start-up on a host: while a worker of the node's queue runs, reconcile the host's engines at
its start (re-adopting what still runs) and follow their logs (a worker bootstep, so every worker has it:
the CLI one and an embedded one). Each heartbeat of the node carries its engines' facts."""
from celery import bootsteps
from django.conf import settings
from django.db import connection
from django.dispatch import receiver

from models_registry.in_use import weights_in_use
from nodes.signals import heartbeat_probing
from sparkportal.celery import app, enqueue_on_node, node_queue


@receiver(heartbeat_probing)
def _engine_facts(sender, *, node, host: dict, gpus: list, **kwargs) -> None:
    from servers import supervisor

    supervisor.heartbeat_engine_facts(node=node, host=host, gpus=gpus)


@receiver(weights_in_use)
def _weights_in_use(sender, *, node_ids: list[int], **kwargs) -> dict:
    from servers import selectors

    return selectors.server_weights_in_use(node_ids=node_ids)


class NodeSupervisorStep(bootsteps.StartStopStep):
    """Reconcile at start and run the log pump for the worker's lifetime."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.enabled = node_queue(settings.NODE_NAME) in set(worker.app.amqp.queues.consume_from or {})

    def start(self, worker) -> None:
        from nodes import services as node_services
        from servers import logs
        from servers.tasks import server_reconcile_task

        node = node_services.node_register(name=settings.NODE_NAME)
        enqueue_on_node(server_reconcile_task, node, node.name, True)
        connection.close()  # this thread's last query until shutdown (see nodes.receivers)
        logs.pump_start(node.name)

    def stop(self, worker) -> None:
        from servers import logs

        logs.pump_stop()

    shutdown = stop


app.steps["worker"].add(NodeSupervisorStep)
