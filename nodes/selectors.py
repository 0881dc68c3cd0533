from django.db.models import QuerySet

from nodes.models import Node, NodeSample
from sparkportal.exceptions import NotFound


def node_list() -> QuerySet[Node]:
    return Node.objects.all()


def node_get_by_name(*, name: str) -> Node | None:
    return Node.objects.filter(name=name).first()


def node_pick(*, name: str | None) -> Node:
    """The node named, or the only one when there is one; a message that lists the nodes otherwise."""
    if name:
        node = node_get_by_name(name=name)
        if node is None:
            known = ", ".join(Node.objects.values_list("name", flat=True)) or "none yet"
            raise NotFound(f"There is no node named {name!r} (known: {known}).", code="unknown_node")
        return node
    nodes = list(Node.objects.all()[:2])
    if len(nodes) != 1:
        raise NotFound("Say which node: " + (", ".join(n.name for n in Node.objects.all()) or
                                             "no node is registered yet (start a worker on a GPU host)."),
                       code="unknown_node")
    return nodes[0]


def node_samples_recent(*, node: Node, limit: int = 120) -> list[NodeSample]:
    """The last `limit` samples, oldest first (what a chart draws)."""
    return list(reversed(NodeSample.objects.filter(node=node).order_by("-at")[:limit]))
