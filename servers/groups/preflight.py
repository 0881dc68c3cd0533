"""A preflight asked before any start: every node of a placement reports its network through its own queue.

The leader's node listens on its address and a free rendezvous port for a few seconds while each follower's node
tries to reach it; every node reports its interface, its addresses and the NCCL/Gloo settings its rank would get.
Nothing is started and no port is kept.
"""
from __future__ import annotations

from celery.exceptions import TaskRevokedError
from celery.exceptions import TimeoutError as CeleryTimeout
from django.conf import settings

from accounts.models import User
from accounts.selectors import require_operator
from models_registry.models import ModelProfile
from nodes.models import Node
from servers import tasks
from servers.groups import admission
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import ValidationFailed


def group_preflight(*, user: User, profile: ModelProfile, nodes: list[Node] | None = None) -> dict:
    """{ok, master, reports: one per node (rank order)}; a node whose worker does not answer is named."""
    require_operator(user)
    if profile.node_count < 2:
        raise ValidationFailed(f"Profile {profile.name} runs on one node: there is no network to check.",
                               code="invalid")
    placement = admission.placement_of(profile)
    chosen = admission.check_node_count(nodes, placement) if nodes else admission.plan_group(
        profile=profile, nodes=None, gpu_memory_utilization=profile.gpu_memory_utilization).nodes
    leader = chosen[0]
    if not leader.host_ip:
        raise ValidationFailed(f"Node {leader.name} has no host IP for multi-node servers: an admin sets its network "
                               "interface and host IP in Admin → Nodes.", code="no_network")
    port = admission.allocate_master_port(leader)
    window = settings.PORTAL_GROUP_PREFLIGHT_CHECK_S
    listening = enqueue_on_node(tasks.group_preflight_listen_task, leader, leader.name, leader.host_ip, port, window,
                                expires=window)
    asked = [(node, enqueue_on_node(tasks.group_preflight_node_task, node, node.name, rank, leader.host_ip, port,
                                    max(1.0, window - 2), expires=window)) for rank, node in enumerate(chosen)]
    reports = [_answer(node, rank, result, timeout=window + 5) for rank, (node, result) in enumerate(asked)]
    listen = _answer(leader, 0, listening, timeout=window + 5)
    if not listen.get("listening", False) and reports[0].get("ok"):
        reports[0].update(ok=False, problem=listen.get("problem") or f"Node {leader.name}: {listen.get('error')}")
    return {"ok": all(r.get("ok") for r in reports), "master": f"{leader.host_ip}:{port}", "reports": reports}


def _answer(node: Node, rank: int, result, *, timeout: float) -> dict:
    try:
        return result.get(timeout=timeout)
    except CeleryTimeout:
        problem = f"did not answer within {timeout:g} s: check that it runs (queue {node.queue})"
    except TaskRevokedError:
        # The check expires with its window: a worker that took it later was busy, or was only starting.
        problem = (f"did not take the check within its {settings.PORTAL_GROUP_PREFLIGHT_CHECK_S:g} s window: it is "
                   f"busy or was not running (queue {node.queue}); ask again")
    except Exception as exc:  # noqa: BLE001 - the node's own failure is its report, never a 500 here
        problem = f"failed the check: {type(exc).__name__}: {exc}"
    return {"node": node.name, "rank": rank, "ok": False, "problem": f"The worker of node {node.name} {problem}."}
