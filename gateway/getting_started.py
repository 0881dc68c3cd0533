"""The dashboard's getting-started checklist: what the team has done so far, read from the real state,
and the one next action of each step.

It lives in gateway because its last step (a first chat or IDE request) is the gateway's usage ledger and
the layer rule lets only the top apps read every lower one (nodes, weights, servers, keys).
"""
from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from accounts.models import ApiKey, User
from gateway.models import UsageRecord
from models_registry.models import ModelProfile, NodeWeights
from nodes.models import Node
from servers.models import Server


@dataclass
class Action:
    label: str
    url: str
    post: dict | None = None  # a one-click form: these fields are POSTed to url
    needs: str = ""  # the role the action needs when the user lacks it ("operator", "admin")


@dataclass
class Step:
    key: str
    title: str
    done: bool
    detail: str
    action: Action | None = None


def checklist(*, user: User) -> list[Step]:
    """The five steps in order; the first not done is where the team is."""
    node = Node.objects.order_by("name").first()
    profile = ModelProfile.objects.order_by("pk").first()
    return [_node_step(node), _weights_step(node, profile), _server_step(node, profile), _key_step(user),
            _request_step(user)]


def checklist_done(steps: list[Step]) -> bool:
    return all(step.done for step in steps)


def _engine_found(node: Node) -> bool:
    return bool((((node.host_facts or {}).get("engines") or {}).get("vllm") or {}).get("found"))


def _node_step(node: Node | None) -> Step:
    title = "A GPU node with vLLM"
    with_engine = next((n for n in Node.objects.order_by("name") if _engine_found(n)), None)
    if with_engine is not None:
        return Step("node", title, True, f"Node {with_engine.name} reports vLLM.")
    if node is None:
        return Step("node", title, False, "No node has reported yet: start a worker on each GPU host "
                    "(`make run` does on this one; the README says how to add another).")
    return Step("node", title, False, f"Node {node.name} reports no vLLM executable.",
                Action("Set the node's vLLM executable", reverse("admin:nodes_node_change", args=[node.pk]),
                       needs="admin"))


def _weights_step(node: Node | None, profile: ModelProfile | None) -> Step:
    title = "Model weights downloaded"
    if NodeWeights.objects.exclude(repos=[]).exists():
        return Step("weights", title, True, "Weights are on a node's disk.")
    if profile is None:
        return Step("weights", title, False, "No model profile yet: add one from the catalog.",
                    Action("Pick a model from the catalog", reverse("models-catalog"), needs="operator"))
    if node is None:
        return Step("weights", title, False, f"Profile {profile.name} is ready to download once a node reports.")
    return Step("weights", title, False, f"Profile {profile.name} has no weights on {node.name} yet.",
                Action(f"Download {profile.repo_id or profile.name}", reverse("models-download", args=[profile.pk]),
                       post={"next": reverse("models-downloads")}, needs="operator"))


def _server_step(node: Node | None, profile: ModelProfile | None) -> Step:
    title = "A server ready"
    ready = Server.objects.filter(status=Server.Status.READY).select_related("node").first()
    if ready is not None:
        return Step("server", title, True, f"{ready.served_model_name} is ready on {ready.node.name}:{ready.port}.")
    if node is None or profile is None:
        return Step("server", title, False, "Start a server once a node and a profile exist.")
    return Step("server", title, False, f"Nothing serves yet: start profile {profile.name} on {node.name}.",
                Action(f"Start {profile.name}", reverse("servers-start"),
                       post={"profile": profile.name, "node": node.name, "restart_policy": "never"},
                       needs="operator"))


def _key_step(user: User) -> Step:
    title = "Your API key"
    if ApiKey.objects.filter(owner=user, revoked_at__isnull=True, gateway_only=False).exists():
        return Step("key", title, True, "You have a key for IDEs and scripts.")
    return Step("key", title, False, "IDEs and scripts call /v1 with a personal key (shown once).",
                Action("Create a key", reverse("accounts-keys"), post={"name": "my-first-key"}))


def _request_step(user: User) -> Step:
    title = "A first chat or IDE request"
    if UsageRecord.objects.filter(user=user).exists():
        return Step("request", title, True, "The gateway has answered you.")
    return Step("request", title, False, "Ask a model on the chat page, or point your IDE at /v1 with your key.",
                Action("Open the chat", reverse("gateway-chat")))


def allowed(user: User, action: Action | None) -> bool:
    """Whether the user may take the action (others see who can)."""
    if action is None or not action.needs:
        return True
    return user.is_portal_admin if action.needs == "admin" else user.is_operator
