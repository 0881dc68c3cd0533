from celery import shared_task

from sparkportal.celery import app


@shared_task(ignore_result=True, time_limit=60)
def node_heartbeat_task(node_name: str) -> None:
    from servers import services

    node = services.node_register(name=node_name)
    services.node_heartbeat(node=node)


@shared_task(ignore_result=True, time_limit=30)
def node_heartbeat_fanout_task() -> None:
    """Beat runs on one host; each node's heartbeat must run on that node, so fan out by queue."""
    from servers.selectors import node_list

    for node in node_list():
        app.send_task("servers.tasks.node_heartbeat_task", args=[node.name], queue=node.queue, expires=10)
