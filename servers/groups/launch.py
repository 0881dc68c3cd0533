"""A rank on its own node: the preflight before its launch, its command line and its network environment
(a Ray group's ranks: servers/groups/ray_launch.py)."""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from engines import environment, multinode
from models_registry import services as registry
from nodes import network
from servers.groups import ray_launch
from servers.models import Server, ServerGroup


def rank_argv(server: Server, *, group: ServerGroup) -> list[str]:
    """`vllm serve` for this rank: bound to its node's host IP, with vLLM's multi-node flags for its rank."""
    from servers import lifecycle

    lifecycle.check_profile_flags(server)
    if ray_launch.is_ray(server) and server.rank > 0:
        return ray_launch.follower_argv(server, group=group)
    rank = multinode.Rank(rank=server.rank, master_addr=group.master_addr, master_port=group.master_port)
    return registry.profile_argv(profile=server.profile, node=server.node, port=server.port,
                                 host=server.node.host_ip or settings.PORTAL_ENGINE_HOST,
                                 gpu_memory_utilization=server.gpu_memory_utilization, rank=rank)


def rank_network(server: Server) -> dict:
    node = server.node
    return environment.network_env(interface=node.network_interface, host_ip=node.host_ip or "",
                                   nvls=node.nccl_nvls_enable)


def rank_env(server: Server) -> dict:
    """The rank's network environment, plus, in a Ray group, what its Ray processes need."""
    env = rank_network(server)
    if ray_launch.is_ray(server):
        env.update(ray_launch.rank_env(server))
    return env


def before_spawn(server: Server, *, env: dict, log_path: Path) -> None:
    """A Ray group's leader starts its Ray head first (raises when the head does not come up)."""
    if ray_launch.is_ray(server) and server.rank == 0:
        ray_launch.start_head(server, env=env, log_path=log_path)


def node_check(*, node, rank: int, master_addr: str, master_port: int, reach_s: float) -> dict:
    """One node's part of a preflight asked before any start (servers.groups.services.group_preflight)."""
    found = network.interfaces()
    report = {"node": node.name, "rank": rank, "interface": node.network_interface, "host_ip": node.host_ip,
              "nccl": environment.network_env(interface=node.network_interface, host_ip=node.host_ip or "",
                                              nvls=node.nccl_nvls_enable),
              "leader": f"{master_addr}:{master_port}", "interfaces": sorted(found)}
    problem = _interface_problem(node, found, report)
    if not problem and rank > 0:
        reach = network.reach(master_addr, master_port, source=node.host_ip or "", timeout_s=reach_s)
        report.update({"reaches": reach.ok, "reach_error": reach.last_error, "reach_seconds": reach.seconds})
        if not reach.ok:
            problem = (f"Node {node.name} cannot reach the leader at {master_addr}:{master_port} from "
                       f"{node.host_ip or 'its default address'}: {reach.last_error}. Check the link between the "
                       f"nodes, a firewall on port {master_port}, and both nodes' network settings in Admin → Nodes.")
    report["ok"], report["problem"] = not problem, problem
    return report


def preflight(server: Server) -> str:
    """What this node reports before its rank starts (kept on the group); an empty string when it may start.

    1. The node's interface exists here and carries its host IP.
    2. NCCL's and Gloo's settings, as the rank will get them.
    3. A follower reaches the leader's address and port (retried while the leader starts, until
       PORTAL_GROUP_PREFLIGHT_TIMEOUT_S): a clear error naming both instead of a rendezvous that hangs.
    """
    group = ServerGroup.objects.get(pk=server.group_id)
    node = server.node
    found = network.interfaces()
    report = {"node": node.name, "rank": server.rank, "interface": node.network_interface, "host_ip": node.host_ip,
              "nccl": rank_network(server), "leader": f"{group.master_addr}:{group.master_port}",
              "interfaces": sorted(found)}
    problem = _interface_problem(node, found, report)
    if not problem and server.rank > 0:
        problem = _reach_problem(server, group, report)
    report["ok"] = not problem
    report["problem"] = problem
    _record(group.pk, server.rank, report)
    return problem


def _interface_problem(node, found: dict[str, list[str]], report: dict) -> str:
    iface = node.network_interface
    if not iface:
        report["interface_found"] = None
        return ""
    report["interface_found"] = iface in found
    if iface not in found:
        return (f"Node {node.name}: network interface {iface} does not exist on this host (it has "
                f"{', '.join(sorted(found))}): an admin sets the node's network interface in Admin → Nodes.")
    report["addresses"] = found[iface]
    if node.host_ip and not network.interface_holds(found[iface], node.host_ip):
        return (f"Node {node.name}: host IP {node.host_ip} is not on interface {iface} ({', '.join(found[iface])}): "
                "an admin corrects the node's host IP or interface in Admin → Nodes.")
    return ""


def _reach_problem(server: Server, group: ServerGroup, report: dict) -> str:
    node = server.node
    leader = Server.objects.select_related("node").filter(group=group, rank=0).first()
    leader_name = leader.node.name if leader else "the leader"

    def stopped() -> bool:
        return not Server.objects.filter(pk=server.pk, status=Server.Status.STARTING).exists()

    reach = network.reach(group.master_addr, group.master_port, source=node.host_ip or "",
                          timeout_s=settings.PORTAL_GROUP_PREFLIGHT_TIMEOUT_S, should_stop=stopped)
    report.update({"reaches": reach.ok, "reach_error": reach.last_error, "reach_seconds": reach.seconds})
    if reach.ok or stopped():
        return ""
    return (f"Node {node.name} cannot reach the leader ({leader_name}) at {group.master_addr}:{group.master_port} "
            f"from {node.host_ip or 'its default address'}: {reach.last_error} ({reach.tries} tries in "
            f"{reach.seconds:g} s). Check the link between the nodes, a firewall on port {group.master_port}, and "
            "both nodes' network interface and host IP in Admin → Nodes.")


def _record(group_id: int, rank: int, report: dict) -> None:
    with transaction.atomic():
        group = ServerGroup.objects.select_for_update().get(pk=group_id)
        group.preflight = {**(group.preflight or {}), str(rank): report}
        ServerGroup.objects.filter(pk=group_id).update(preflight=group.preflight)
