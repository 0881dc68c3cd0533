from sparkportal.celery import app, enqueue_on_node


@app.task(ignore_result=True, time_limit=60)
def node_heartbeat_task(node_name: str) -> None:
    from nodes import services

    node = services.node_register(name=node_name)
    services.node_heartbeat(node=node)


@app.task(ignore_result=True, time_limit=30)
def node_heartbeat_fanout_task() -> None:
    """Beat runs on one host; each node's heartbeat must run on that node, so fan out by queue."""
    from nodes.selectors import node_list

    for node in node_list():
        enqueue_on_node(node_heartbeat_task, node, node.name, expires=10)
