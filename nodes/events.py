"""Group names and payloads of the nodes app's live events."""
from typing import TypedDict

from sparkportal.events import publish

NODES_GROUP = "nodes.all"


def node_group(node_id: int) -> str:
    return f"nodes.node.{node_id}"


class NodeSamplePayload(TypedDict):
    node_id: int
    node: str
    at: str
    host: dict
    gpus: list


def send_node_sample(payload: NodeSamplePayload) -> None:
    publish(NODES_GROUP, "node.sample", dict(payload))
    publish(node_group(payload["node_id"]), "node.sample", dict(payload))
