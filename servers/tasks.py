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


@shared_task(ignore_result=True, time_limit=30)
def server_metrics_scrape_task(node_name: str) -> None:
    from servers import metric_services

    metric_services.server_metrics_scrape_node(node_name=node_name)


@shared_task(ignore_result=True, time_limit=30)
def server_metrics_fanout_task() -> None:
    """Each node scrapes its own servers (they may listen on loopback only), so fan out by queue."""
    from django.conf import settings

    from servers.selectors import node_list

    for node in node_list():
        app.send_task("servers.tasks.server_metrics_scrape_task", args=[node.name], queue=node.queue,
                      expires=settings.PORTAL_METRICS_SCRAPE_SECONDS)


@shared_task(ignore_result=True, time_limit=600)
def server_metric_samples_compact_task() -> None:
    from servers import metric_services

    metric_services.server_metric_samples_compact()
