"""Servers app services. Node registration and heartbeat live here; the supervisor joins later."""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from servers import events, probes, processes
from servers.models import Node, NodeSample
from sparkportal.celery import node_queue


def node_register(*, name: str) -> Node:
    """Create this host's Node row on first start; idempotent."""
    node, _created = Node.objects.get_or_create(name=name, defaults={"queue": node_queue(name)})
    return node


def node_heartbeat(*, node: Node) -> NodeSample:
    """Probe host and GPUs, store a sample, publish it, prune old samples."""
    now = timezone.now()
    from servers import supervisor

    host = probes.host_facts()
    host["engines"] = supervisor.engine_facts(node)
    gpus = probes.fill_unified_memory(probes.gpu_facts(), python=processes.interpreter_of(node.vllm_executable),
                                      env=supervisor.probe_env(node))
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(last_heartbeat_at=now, host_facts=host, gpu_facts=gpus)
        sample = NodeSample.objects.create(node=node, at=now, host=host, gpus=gpus)
    events.send_node_sample({"node_id": node.pk, "node": node.name, "at": now.isoformat(), "host": host,
                             "gpus": gpus})
    cutoff = now - timedelta(hours=settings.PORTAL_SAMPLE_RETENTION_HOURS)
    NodeSample.objects.filter(node=node, at__lt=cutoff).delete()
    return sample


# The server lifecycle lives in its own modules; these are the services other apps call.
from servers.lifecycle import (  # noqa: E402
    propose_port,
    server_adopt,
    server_ensure_ready,
    server_idle_stop,
    server_on_demand_set,
    server_plan,
    server_restart,
    server_start,
    server_stop,
    server_touch,
    servers_idle_stop,
)

__all__ = ["node_register", "node_heartbeat", "server_start", "server_stop", "server_adopt", "server_restart",
           "server_plan", "propose_port", "server_ensure_ready", "server_idle_stop", "servers_idle_stop",
           "server_touch", "server_on_demand_set"]
