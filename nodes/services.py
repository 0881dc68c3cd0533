"""Node registration and heartbeat."""
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from nodes import events, probes, signals
from nodes.models import Node, NodeSample
from sparkportal.celery import node_queue


def node_register(*, name: str) -> Node:
    """Create this host's Node row on first start; idempotent."""
    node, _created = Node.objects.get_or_create(name=name, defaults={"queue": node_queue(name)})
    return node


def node_heartbeat(*, node: Node) -> NodeSample:
    """Probe host and GPUs (receivers of heartbeat_probing add theirs), store a sample, publish it, prune."""
    now = timezone.now()
    host = probes.host_facts()
    gpus = probes.gpu_facts()
    signals.heartbeat_probing.send(sender=Node, node=node, host=host, gpus=gpus)
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(last_heartbeat_at=now, host_facts=host, gpu_facts=gpus)
        sample = NodeSample.objects.create(node=node, at=now, host=host, gpus=gpus)
    events.send_node_sample({"node_id": node.pk, "node": node.name, "at": now.isoformat(), "host": host,
                             "gpus": gpus})
    cutoff = now - timedelta(hours=settings.PORTAL_SAMPLE_RETENTION_HOURS)
    NodeSample.objects.filter(node=node, at__lt=cutoff).delete()
    return sample
