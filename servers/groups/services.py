"""The lifecycle of a multi-node group: start, stop and restart it whole, and follow what its ranks do.

Each rank is a Server row on its own node, launched, watched and stopped by that node's worker like any
server (servers/supervisor.py); these functions tie them together. Locks: the group row first, then its
ranks' rows (lifecycle.transition), so a failing rank and an operator's stop see each other.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import require_operator
from accounts.services import audit_record
from models_registry.models import ModelProfile
from nodes.models import Node
from servers import events, lifecycle, tasks
from servers.groups import admission, launch
from servers.models import Server, ServerEvent, ServerGroup
from sparkportal.exceptions import InvalidTransition, ValidationFailed

S = Server.Status
G = ServerGroup.Status


def _lock_group(group_id: int) -> ServerGroup:
    return ServerGroup.objects.select_for_update().select_related("profile").get(pk=group_id)


def _lock_nodes(nodes: list[Node]) -> None:
    # In id order, so two admissions over the same nodes never wait on each other crosswise.
    list(Node.objects.select_for_update().filter(pk__in=[n.pk for n in nodes]).order_by("pk"))


def _set(group_id: int, *, to: str, allowed: tuple, reason: str, **fields) -> bool:
    """Move a group to `to` if its status allows it; its leader's page hears of it (a server status event)."""
    if not ServerGroup.objects.filter(pk=group_id, status__in=allowed).update(status=to, status_reason=reason[:4000],
                                                                               **fields):
        return False
    leader = Server.objects.select_related("node").filter(group_id=group_id, rank=0).first()
    if leader is not None:
        payload = lifecycle._payload(leader)
        transaction.on_commit(lambda: events.send_server_status(payload))
    return True


@transaction.atomic
def group_start(*, user: User, profile: ModelProfile, nodes: list[Node] | None = None,
                gpu_memory_utilization: float | None = None, restart_policy: str = "never",
                allow_replica: bool = False, ip: str | None = None) -> ServerGroup:
    """Admit a multi-node profile on its nodes (chosen by the portal, or named with the leader first) and queue
    one rank per node, each on its own node's queue.

    1. Refuse a profile that fits one node, and a second live group of the profile unless a replica is asked for.
    2. Lock the candidate nodes, then admit every node's rank (budget, its share of the memory, its weights).
    3. Take a rendezvous port on the leader's address, insert the group and its ranks `queued`, audit, and send
       each rank's launch to its node after commit.
    """
    require_operator(user)
    if profile.node_count < 2:
        raise ValidationFailed(f"Profile {profile.name} runs on one node: start it as a server.", code="invalid")
    if restart_policy not in ("never", "on-failure"):
        raise ValidationFailed("restart_policy is never or on-failure.", code="invalid")
    twin = ServerGroup.objects.filter(profile=profile, status__in=ServerGroup.LIVE).first()
    if twin is not None and not allow_replica:
        raise ValidationFailed(f"Profile {profile.name} is already {twin.status} as group #{twin.pk}: stop it first, "
                               "or ask for another replica.", code="already_running")
    util = float(gpu_memory_utilization if gpu_memory_utilization is not None else profile.gpu_memory_utilization)
    if not 0.0 < util <= 1.0:
        raise ValidationFailed(f"gpu_memory_utilization must be above 0 and at most 1, not {util}.", code="invalid")
    _lock_nodes(list(nodes) if nodes else list(Node.objects.all()))
    plan = admission.plan_group(profile=profile, nodes=nodes, gpu_memory_utilization=util)
    leader = plan.nodes[0]
    group = ServerGroup.objects.create(
        profile=profile, served_model_name=profile.model_name, node_count=plan.placement.nodes,
        master_addr=leader.host_ip, master_port=admission.allocate_master_port(leader), restart_policy=restart_policy,
        started_by=user, status=G.STARTING, status_reason=f"start requested by {user}")
    for rank, node in enumerate(plan.nodes):
        _queue_rank(group=group, node=node, rank=rank, util=util, user=user, gpus=admission.gpus_of(plan.placement))
    audit_record(actor=user, action="servers.group.started", target=group, ip=ip,
                 details={"profile": profile.name, "nodes": [n.name for n in plan.nodes],
                          "master": f"{group.master_addr}:{group.master_port}", "plan": plan.as_dict()})
    return group


def _queue_rank(*, group: ServerGroup, node: Node, rank: int, util: float, user: User, gpus: str) -> Server:
    server = Server(node=node, profile=group.profile, served_model_name=group.served_model_name,
                    port=lifecycle.propose_port(node), host=node.host_ip or settings.PORTAL_ENGINE_HOST,
                    status=S.QUEUED, engine=Server.Engine.VLLM, gpu_memory_utilization=util, cuda_visible_devices=gpus,
                    restart_policy="never", started_by=user, group=group, rank=rank)
    server.argv = launch.rank_argv(server, group=group)  # raises on flags vLLM would refuse
    server.full_clean()
    server.save()
    ServerEvent.objects.create(server=server, old=S.STOPPED, new=S.QUEUED,
                               reason=f"rank {rank} of group #{group.pk}, start requested by {user}")
    payload = lifecycle._payload(server)
    transaction.on_commit(lambda: events.send_server_status(payload))
    lifecycle._enqueue(tasks.server_launch_task, server)
    return server


def group_stop(*, user: User, group: ServerGroup, ip: str | None = None) -> ServerGroup:
    """Stop every rank of a group on its own node; the group is stopped once the last one is."""
    require_operator(user)
    with transaction.atomic():
        locked = _lock_group(group.pk)
        live = Server.objects.filter(group=locked, status__in=Server.LIVE).exists()
        if locked.status not in ServerGroup.LIVE and not live:
            raise InvalidTransition(f"Group #{group.pk} is {locked.status}: there is nothing to stop.")
        reason = f"stop requested by {user}"
        pending = _stop_ranks(locked.pk, reason=reason)
        if pending:
            _set(locked.pk, to=G.STOPPING, allowed=ServerGroup.LIVE + (G.FAILED,), reason=reason, next_restart_at=None)
        else:
            _set(locked.pk, to=G.STOPPED, allowed=ServerGroup.LIVE + (G.FAILED,), reason=reason,
                 stopped_at=timezone.now(), next_restart_at=None)
        audit_record(actor=user, action="servers.group.stopped", target=locked, ip=ip, details={"from": locked.status})
        locked.refresh_from_db()
    return locked


def _stop_ranks(group_id: int, *, reason: str, except_id: int | None = None) -> int:
    """Queued ranks leave their queue; starting and running ones are stopped by their node. Returns how many."""
    pending = 0
    for server_id in Server.objects.filter(group_id=group_id, status__in=Server.LIVE).exclude(pk=except_id) \
            .values_list("pk", flat=True):
        locked = lifecycle._lock(server_id)
        try:
            if locked.status == S.QUEUED:
                lifecycle.transition(server_id, to=S.STOPPED, allowed_from=(S.QUEUED,), reason=reason,
                                     stopped_at=timezone.now())
            elif locked.status in (S.STARTING, S.READY, S.SLEEPING, S.WAKING):
                lifecycle._send_stop(server_id, reason=reason)
                pending += 1
            elif locked.status == S.STOPPING:
                pending += 1
        except InvalidTransition:
            continue
    return pending


def group_restart(*, user: User, group: ServerGroup, ip: str | None = None) -> ServerGroup:
    """Start a stopped or failed group again on the same nodes (admitted again, every rank)."""
    require_operator(user)
    with transaction.atomic():
        locked = _lock_group(group.pk)
        if locked.status not in (G.STOPPED, G.FAILED):
            raise InvalidTransition(f"Group #{group.pk} is {locked.status}: only a stopped or failed group can be "
                                    "started again.")
        _requeue(locked, reason=f"start requested by {user}", attempts=0)
        audit_record(actor=user, action="servers.group.restarted", target=locked, ip=ip)
        locked.refresh_from_db()
    return locked


def _requeue(locked: ServerGroup, *, reason: str, attempts: int) -> None:
    ranks = list(Server.objects.filter(group=locked).select_related("node").order_by("rank"))
    if any(r.status in Server.LIVE for r in ranks):
        raise InvalidTransition(f"Group #{locked.pk} still has ranks stopping: start it again once they stopped.")
    nodes = [r.node for r in ranks]
    _lock_nodes(nodes)
    plan = admission.plan_group(profile=locked.profile, nodes=nodes,
                                gpu_memory_utilization=ranks[0].gpu_memory_utilization)
    port = locked.master_port
    if ServerGroup.objects.filter(master_addr=locked.master_addr, master_port=port, status__in=ServerGroup.LIVE) \
            .exclude(pk=locked.pk).exists():
        port = admission.allocate_master_port(plan.nodes[0])
    _set(locked.pk, to=G.STARTING, allowed=(G.STOPPED, G.FAILED), reason=reason, master_port=port, failure_code="",
         restart_attempts=attempts, next_restart_at=None, stopped_at=None, ready_at=None, preflight={})
    locked.refresh_from_db()
    for server in ranks:
        lifecycle.check_port(node=server.node, port=server.port, exclude_id=server.pk)
        argv = launch.rank_argv(server, group=locked)
        queued = lifecycle.transition(server.pk, to=S.QUEUED, allowed_from=(S.STOPPED, S.FAILED), argv=argv,
                                      reason=f"{reason} (rank {server.rank} of group #{locked.pk})", failure_code="",
                                      restart_attempts=0, next_restart_at=None, cleared_at=None)
        lifecycle._enqueue(tasks.server_launch_task, queued)


# --- what a rank's node reports (called by servers/supervisor.py on that node's worker) ---------------------------

def rank_ready(server: Server) -> None:
    """A rank became ready: the group is ready once all of them are."""
    if server.group_id is None:
        return
    with transaction.atomic():
        _lock_group(server.group_id)
        if not Server.objects.filter(group_id=server.group_id).exclude(status=S.READY).exists():
            _set(server.group_id, to=G.READY, allowed=(G.STARTING,), reason="every rank is ready, the leader answers",
                 ready_at=timezone.now())


def rank_failed(server_id: int, *, code: str, reason: str) -> None:
    """A rank exited or could not start: the whole group fails and its other ranks are stopped on their nodes."""
    server = Server.objects.select_related("node").get(pk=server_id)
    if server.group_id is None:
        return
    with transaction.atomic():
        group = _lock_group(server.group_id)
        why = f"rank {server.rank} on node {server.node.name} failed: {reason}"
        restart_at = None
        if group.restart_policy == "on-failure" and group.restart_attempts < group.max_restarts:
            backoff = settings.PORTAL_RESTART_BACKOFF_S * 2 ** group.restart_attempts
            restart_at = timezone.now() + timedelta(seconds=backoff)
        _set(group.pk, to=G.FAILED, allowed=(G.STARTING, G.READY), reason=why, failure_code=code,
             stopped_at=timezone.now(), next_restart_at=restart_at)
        _stop_ranks(group.pk, reason=f"group #{group.pk} stopped: {why}"[:2000], except_id=server_id)


def rank_stopped(server: Server) -> None:
    """A rank stopped: a stopping group is stopped once none of its ranks lives."""
    if server.group_id is None:
        return
    with transaction.atomic():
        _lock_group(server.group_id)
        if not Server.objects.filter(group_id=server.group_id, status__in=Server.LIVE).exists():
            _set(server.group_id, to=G.STOPPED, allowed=(G.STOPPING,), reason="every rank stopped",
                 stopped_at=timezone.now())


def leader_ready(server: Server) -> bool:
    """A follower is ready when its leader answers (a headless rank has no HTTP of its own)."""
    return Server.objects.filter(group_id=server.group_id, rank=0, status=S.READY).exists()


def groups_restart_due(node: Node) -> list[int]:
    """Restart the failed groups led from this node whose back-off has passed (restart policy on-failure)."""
    due = ServerGroup.objects.filter(status=G.FAILED, restart_policy="on-failure", next_restart_at__lte=timezone.now(),
                                     ranks__rank=0, ranks__node=node)
    restarted = []
    for group_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            group = _lock_group(group_id)
            if group.status != G.FAILED or group.restart_attempts >= group.max_restarts:
                continue
            try:
                with transaction.atomic():  # a refused admission leaves the group failed, as it was
                    _requeue(group, attempts=group.restart_attempts + 1,
                             reason=f"restart {group.restart_attempts + 1} of {group.max_restarts} (restart policy: "
                                    "on failure)")
            except (InvalidTransition, ValidationFailed) as exc:
                ServerGroup.objects.filter(pk=group_id).update(status_reason=f"{group.status_reason} — restart "
                                                                             f"waits: {exc}"[:4000])
                continue
        restarted.append(group_id)
    return restarted
