"""Admission of a multi-node group: nodes, each node's share, the weights on every node, the master port."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from engines import multinode
from models_registry.models import ModelProfile, NodeWeights
from nodes.models import Node
from servers import planner, processes
from servers.models import Server, ServerGroup
from sparkportal.exceptions import ValidationFailed


@dataclass
class GroupPlan:
    placement: multinode.Placement
    nodes: list[Node]
    plans: list[planner.Plan]

    def as_dict(self) -> dict:
        return {"placement": self.placement.describe(), "nodes": [n.name for n in self.nodes],
                "plans": [p.as_dict() for p in self.plans]}


def placement_of(profile: ModelProfile) -> multinode.Placement:
    return multinode.Placement(nodes=profile.node_count, tensor_parallel_size=profile.tensor_parallel_size or 1,
                               pipeline_parallel_size=profile.pipeline_parallel_size or 1,
                               backend=profile.distributed_backend)


def gpus_of(placement: multinode.Placement) -> str:
    return ",".join(str(i) for i in range(max(1, placement.gpus_per_node)))


def plan_group(*, profile: ModelProfile, nodes: list[Node] | None, gpu_memory_utilization: float) -> GroupPlan:
    """Pick the nodes (or check the operator's), then admit each node's rank; raise with every node's reason."""
    placement = placement_of(profile)
    problems = multinode.placement_problems(placement)
    if problems:
        raise ValidationFailed(" ".join(problems), code="bad_placement")
    chosen = check_node_count(nodes, placement) if nodes else _choose(profile, placement, gpu_memory_utilization)
    plans, errors = [], []
    for node in chosen:
        plan = _plan_rank(node=node, profile=profile, placement=placement, util=gpu_memory_utilization)
        plans.append(plan)
        errors.extend(plan.errors)
    if errors:
        codes = {p.code for p in plans if p.errors}
        raise ValidationFailed(" ".join(errors), code=codes.pop() if len(codes) == 1 else "refused",
                               extra={"plans": [p.as_dict() for p in plans]})
    return GroupPlan(placement=placement, nodes=chosen, plans=plans)


def _plan_rank(*, node: Node, profile: ModelProfile, placement: multinode.Placement, util: float) -> planner.Plan:
    """One node's admission: the budget and the memory of its share of the weights plus its KV cache."""
    plan = planner.plan_start(node=node, profile=profile, gpu_memory_utilization=util,
                              cuda_visible_devices=gpus_of(placement), parts=placement.nodes)
    check_weights(plan, node=node, profile=profile)
    if placement.backend == "ray":
        check_one_ray_node(plan, node=node)
    if not node.host_ip:
        plan.code = plan.code or "no_network"
        plan.errors.append(f"Node {node.name} has no host IP for multi-node servers: an admin sets its network "
                           "interface and host IP in Admin → Nodes.")
    return plan


def check_weights(plan: planner.Plan, *, node: Node, profile: ModelProfile) -> None:
    """Every rank loads its share from its own disk: a node whose last scan lacks the weights refuses the group."""
    if profile.source != ModelProfile.Source.HUB or not profile.repo_id:
        return
    scan = NodeWeights.objects.filter(node=node, scanned_at__isnull=False).first()
    repos = {str(r.get("repo_id", "")).lower() for r in (scan.repos if scan else None) or []}
    if profile.repo_id.lower() not in repos:
        plan.code = plan.code or "weights_missing"
        seen = "were never scanned there" if scan is None else "are not among the weights downloaded there"
        plan.errors.append(f"Node {node.name} lacks the weights of {profile.repo_id} (they {seen}): every node of "
                           "a multi-node server loads them from its own disk at the same path; download them to "
                           f"{node.name} first.")


def check_one_ray_node(plan: planner.Plan, *, node: Node) -> None:
    """One Ray node per host: `ray start` binds fixed ports besides the GCS (the dashboard agent's 52365, the Ray
    client's 10001 on a head), so a second Ray node on the same host would fail to start."""
    busy = Server.objects.filter(node=node, status__in=Server.LIVE, group__isnull=False,
                                 profile__distributed_backend="ray").first()
    if busy is not None:
        plan.code = plan.code or "ray_node_busy"
        plan.errors.append(f"Node {node.name} already runs a Ray node for group #{busy.group_id}: the portal runs one "
                           "Ray node per host. Stop that group, pick other nodes, or use distributed_backend mp.")


def check_node_count(nodes: list[Node], placement: multinode.Placement) -> list[Node]:
    if len(nodes) != placement.nodes or len({n.pk for n in nodes}) != len(nodes):
        raise ValidationFailed(f"This profile spans {placement.nodes} nodes: name {placement.nodes} different nodes "
                               f"(the first is the leader), not {len(nodes)}.", code="bad_placement")
    return list(nodes)


def _choose(profile: ModelProfile, placement: multinode.Placement, util: float) -> list[Node]:
    """Nodes with a recent heartbeat, a host IP and room for a rank, the most free memory first."""
    fresh = timezone.now() - timedelta(seconds=settings.PORTAL_NODE_STALE_S)
    fits = []
    for node in Node.objects.filter(last_heartbeat_at__gte=fresh).exclude(host_ip=None).order_by("name"):
        plan = _plan_rank(node=node, profile=profile, placement=placement, util=util)
        if plan.ok:
            fits.append((-(plan.free_gb or 0.0), node.name, node))
    if len(fits) < placement.nodes:
        raise ValidationFailed(f"This profile spans {placement.nodes} nodes but only {len(fits)} node(s) with a "
                               "recent heartbeat, a host IP, its weights and room for a rank were found: name the "
                               "nodes to see each one's reason, or free memory.", code="not_enough_nodes")
    return [node for _free, _name, node in sorted(fits, key=lambda f: (f[0], f[1]))[:placement.nodes]]


def allocate_master_port(leader: Node) -> int:
    """The first rendezvous port no live group of the leader's address uses (and, on this host, free)."""
    used = set(ServerGroup.objects.filter(master_addr=leader.host_ip, status__in=ServerGroup.LIVE)
               .values_list("master_port", flat=True))
    local = leader.name == settings.NODE_NAME
    for port in range(settings.PORTAL_GROUP_MASTER_PORT_FIRST, settings.PORTAL_GROUP_MASTER_PORT_LAST + 1):
        if port not in used and not (local and processes.port_taken(leader.host_ip, port)):
            return port
    raise ValidationFailed(f"No free rendezvous port left on {leader.name} between "
                           f"{settings.PORTAL_GROUP_MASTER_PORT_FIRST} and {settings.PORTAL_GROUP_MASTER_PORT_LAST}: "
                           "stop a multi-node server.", code="no_free_port")
