from django.conf import settings

from sparkportal.celery import app, enqueue_on_node


@app.task(ignore_result=True, time_limit=30)
def server_metrics_scrape_task(node_name: str) -> None:
    from servers.metrics import services as metric_services

    metric_services.server_metrics_scrape_node(node_name=node_name)


@app.task(ignore_result=True, time_limit=30)
def server_metrics_fanout_task() -> None:
    """Each node scrapes its own servers (they may listen on loopback only), so fan out by queue."""
    from nodes.selectors import node_list

    for node in node_list():
        enqueue_on_node(server_metrics_scrape_task, node, node.name, expires=settings.PORTAL_METRICS_SCRAPE_SECONDS)


@app.task(ignore_result=True, time_limit=600)
def server_metric_samples_compact_task() -> None:
    from servers.metrics import services as metric_services

    metric_services.server_metric_samples_compact()


@app.task(ignore_result=True, acks_late=True, time_limit=settings.PORTAL_SERVER_START_TIMEOUT_S + 120)
def server_launch_task(server_id: int) -> None:
    """Claims a queued server (queued -> starting) or resumes watching one; safe to deliver twice."""
    from servers import supervisor

    supervisor.server_launch(server_id)


@app.task(ignore_result=True, acks_late=True, time_limit=3600)
def server_stop_task(server_id: int) -> None:
    from servers import supervisor

    supervisor.server_stop(server_id)


@app.task(ignore_result=True, time_limit=120)
def servers_idle_stop_task() -> None:
    """Stops servers and multi-node groups marked "unload when idle" that are idle past their limit, then puts
    servers marked "sleep when idle" to sleep (beat, every minute; safe twice)."""
    from servers import services

    services.servers_idle_stop()
    services.groups_idle_stop()
    services.servers_idle_sleep()


@app.task(ignore_result=True, time_limit=300)
def server_reconcile_task(node_name: str, at_worker_start: bool = False) -> None:
    from nodes.selectors import node_get_by_name
    from servers import reconcile

    node = node_get_by_name(name=node_name)
    if node is not None:
        reconcile.node_reconcile(node=node, at_worker_start=at_worker_start)


@app.task(ignore_result=True, time_limit=30)
def server_reconcile_fanout_task() -> None:
    from nodes.selectors import node_list

    for node in node_list():
        enqueue_on_node(server_reconcile_task, node, node.name, expires=30)


@app.task(time_limit=30)
def server_log_tail_task(server_id: int, lines: int = 200, query: str = "") -> list:
    """Read a log on the host that has it (the web may run elsewhere)."""
    from servers import logs

    return logs.lines_read(server_id, lines=lines, query=query)


@app.task(time_limit=120)
def group_preflight_listen_task(node_name: str, address: str, port: int, seconds: float) -> dict:
    """The leader's side of a preflight check: listen on the rendezvous address and port for a while."""
    from nodes import network

    return {"node": node_name, **network.listen(address, port, seconds=seconds)}


@app.task(time_limit=120)
def group_preflight_node_task(node_name: str, rank: int, master_addr: str, master_port: int, reach_s: float) -> dict:
    """One node's preflight report (interface, NCCL settings, and for a follower whether it reaches the leader)."""
    from nodes.selectors import node_get_by_name
    from servers.groups import launch

    return launch.node_check(node=node_get_by_name(name=node_name), rank=rank, master_addr=master_addr,
                             master_port=master_port, reach_s=reach_s)


@app.task(ignore_result=True, acks_late=True, time_limit=settings.PORTAL_SLEEP_TIMEOUT_S + 60)
def server_sleep_task(server_id: int) -> None:
    """Asks the engine of a server marked sleeping to sleep; does nothing once confirmed (safe twice)."""
    from servers import sleep

    sleep.server_sleep(server_id)


@app.task(ignore_result=True, acks_late=True, time_limit=settings.PORTAL_WAKE_TIMEOUT_S + 60)
def server_wake_task(server_id: int) -> None:
    from servers import sleep

    sleep.server_wake(server_id)


@app.task(ignore_result=True, acks_late=True,
          time_limit=settings.PORTAL_SLEEP_TIMEOUT_S + settings.PORTAL_WAKE_TIMEOUT_S + 60)
def server_swap_task(sleep_id: int, wake_id: int) -> None:
    from servers import sleep

    sleep.server_swap(sleep_id, wake_id)
