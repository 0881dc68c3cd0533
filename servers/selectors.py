from django.db.models import QuerySet

from servers.models import Node, NodeSample


def node_list() -> QuerySet[Node]:
    return Node.objects.all()


def node_samples_recent(*, node: Node, limit: int = 120) -> list[NodeSample]:
    """The last `limit` samples, oldest first (what a chart draws)."""
    return list(reversed(NodeSample.objects.filter(node=node).order_by("-at")[:limit]))
