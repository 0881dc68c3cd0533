"""Services of the server lifecycle: start, stop, adopt, on-demand start, idle stop, and every status transition.

This module is the one owner of "who may start or stop a server": operators through the Servers page
and API, the gateway through `server_ensure_ready` (load on demand) and `servers_idle_stop` (unload
when idle). Each admission runs the same port check and memory planner.

Transitions are conditional UPDATEs on a locked row (`select_for_update`), each leaving a
ServerEvent; status events go out after commit. Host work (spawning, signalling, health polling)
happens in tasks on the node's queue (servers/supervisor.py), queued with transaction.on_commit.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from celery import Task
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import limits
from accounts.models import User
from accounts.selectors import require_operator
from accounts.services import audit_record
from engines import flags as engine_flags
from engines import redact
from models_registry.models import ModelProfile
from nodes.models import Node
from servers import events, planner, processes, tasks
from servers.models import Server, ServerEvent
from sparkportal.celery import enqueue_on_node
from sparkportal.exceptions import InvalidTransition, Unavailable, ValidationFailed

S = Server.Status


def _payload(server: Server) -> events.ServerStatusPayload:
    return {"server_id": server.pk, "node": server.node.name, "served_model_name": server.served_model_name,
            "port": server.port, "status": server.status, "reason": server.status_reason,
            "failure_code": server.failure_code, "pid": server.pid, "at": timezone.now().isoformat()}


def transition(server_id: int, *, to: str, reason: str = "", allowed_from: tuple | None = None,
               **fields) -> Server:
    """Move a server to `to` if its current status allows it; raise InvalidTransition otherwise.

    The row is locked first so the recorded `old` status is the one the UPDATE replaced; the UPDATE
    still names the allowed statuses, so a concurrent writer on a database without row locks
    (SQLite serializes write transactions instead) cannot slip through.
    """
    allowed = allowed_from or tuple(src for src, targets in Server.TRANSITIONS.items() if to in targets)
    # Reasons quote failure lines, which may repeat a secret flag; every member sees them.
    reason = redact.text_redact(reason)
    if "argv" in fields:
        fields["argv"] = redact.argv_redact(fields["argv"])
    if "last_log_lines" in fields:
        fields["last_log_lines"] = redact.text_redact(fields["last_log_lines"])
    with transaction.atomic():
        current = Server.objects.select_for_update(of=("self",)).select_related("node").get(pk=server_id)
        old = current.status
        updated = Server.objects.filter(pk=server_id, status__in=allowed).update(
            status=to, status_reason=reason, **fields)
        if updated == 0:
            raise InvalidTransition(f"Server #{server_id} is {old}; it cannot become {to}.")
        ServerEvent.objects.create(server_id=server_id, old=old, new=to, reason=reason[:2000])
        server = Server.objects.select_related("node", "profile").get(pk=server_id)
        payload = _payload(server)
        transaction.on_commit(lambda: events.send_server_status(payload))
    return server


def _enqueue(task: Task, server: Server, *args) -> None:
    """Send a task to the server's node after commit (the worker must see the committed row)."""
    node = server.node
    transaction.on_commit(lambda: enqueue_on_node(task, node, server.pk, *args))


def _lock(server_id: int) -> Server:
    # of=self: PostgreSQL cannot lock the nullable side (profile) of the outer join.
    return Server.objects.select_for_update(of=("self",)).select_related("node", "profile").get(pk=server_id)


def propose_port(node: Node) -> int:
    """The first port of the engine range that no live server of the node uses (and, on this host, is free)."""
    used = set(Server.objects.filter(node=node, status__in=Server.LIVE).values_list("port", flat=True))
    local = node.name == settings.NODE_NAME
    for port in range(settings.PORTAL_ENGINE_PORT_FIRST, settings.PORTAL_ENGINE_PORT_LAST + 1):
        if port not in used and not (local and processes.port_taken(settings.PORTAL_ENGINE_HOST, port)):
            return port
    raise ValidationFailed(f"No free port left on node {node.name} between {settings.PORTAL_ENGINE_PORT_FIRST} "
                           f"and {settings.PORTAL_ENGINE_PORT_LAST}: stop a server.", code="no_free_port")


def check_port(*, node: Node, port: int, exclude_id: int | None = None) -> None:
    if not 1024 <= port <= 65535:
        raise ValidationFailed(f"Port {port} is outside 1024-65535: pick another port.", code="bad_port")
    holder = Server.objects.filter(node=node, port=port, status__in=Server.LIVE).exclude(pk=exclude_id).first()
    if holder is not None:
        raise ValidationFailed(f"Port {port} on node {node.name} is used by server #{holder.pk} "
                               f"({holder.served_model_name}, {holder.status}): pick another port.",
                               code="port_in_use")
    if node.name == settings.NODE_NAME and processes.port_taken(settings.PORTAL_ENGINE_HOST, port):
        raise ValidationFailed(f"Port {port} is in use on {node.name} by a process the portal did not start: "
                               "pick another port.", code="port_in_use")


def check_profile_flags(server: Server) -> None:
    """Refuse a profile whose extra flags fail the engine's checks (it may have been written before a rule
    existed, or straight into the database)."""
    check = engine_flags.check_extra_flags(server.engine, server.profile.extra_flags)
    if check.problems:
        raise ValidationFailed("; ".join(p.rstrip(".") for p in check.problems) + ".", code=check.code)


def launch_argv(*, server: Server, profile: ModelProfile, node: Node) -> list[str]:
    """The profile's argv on this server's port and utilization share, once its extra flags pass the engine's
    checks; a rank of a multi-node group gets its rank's (servers/groups/launch.py)."""
    from models_registry import services as registry

    if server.group_id is not None:
        from servers.groups import launch

        return launch.rank_argv(server, group=server.group)
    check_profile_flags(server)
    util = server.gpu_memory_utilization if server.engine == "vllm" else None
    return registry.profile_argv(profile=profile, node=node, port=server.port, host=settings.PORTAL_ENGINE_HOST,
                                 gpu_memory_utilization=util)


def server_plan(*, node: Node, profile: ModelProfile, gpu_memory_utilization: float | None = None,
                cuda_visible_devices: str = "") -> planner.Plan:
    util = gpu_memory_utilization if gpu_memory_utilization is not None else _default_util(profile)
    # A multi-node profile's preview is one node's rank: its share of the memory.
    return planner.plan_start(node=node, profile=profile, gpu_memory_utilization=util,
                              cuda_visible_devices=cuda_visible_devices, parts=max(1, profile.node_count))


def _default_util(profile: ModelProfile) -> float:
    # TEI has no utilization knob and holds little memory; it is planned by its estimate only.
    return 0.0 if profile.engine == "tei" else float(profile.gpu_memory_utilization)


@transaction.atomic
def server_start(*, user: User, profile: ModelProfile, node: Node, port: int | None = None,
                 gpu_memory_utilization: float | None = None, cuda_visible_devices: str = "",
                 restart_policy: str = "never", allow_replica: bool = False, ip: str | None = None) -> Server:
    """Admit and queue a new server; the node's worker launches it when the node's previous start is done.

    1. Lock the node row: admissions on one node are serialized, so two clicks see each other.
    2. Refuse a second live server of the same profile on the node unless a replica is asked for.
    3. Check the flags (a typo is refused now, not after a minutes-long start), the port and the plan.
    4. Insert the row as `queued`, audit, and queue the launch after commit.
    """
    require_operator(user)
    if profile.node_count > 1:
        raise ValidationFailed(f"Profile {profile.name} spans {profile.node_count} nodes: start it as a multi-node "
                               "server (name its nodes, or let the portal pick them).", code="multi_node")
    node = Node.objects.select_for_update().get(pk=node.pk)
    twin = Server.objects.filter(node=node, profile=profile, status__in=Server.LIVE).first()
    if twin is not None and not allow_replica:
        raise ValidationFailed(f"Profile {profile.name} is already {twin.status} on node {node.name} as server "
                               f"#{twin.pk} (port {twin.port}): stop it first, or ask for another replica.",
                               code="already_running")
    util = gpu_memory_utilization if gpu_memory_utilization is not None else _default_util(profile)
    if profile.engine != "tei" and not 0.0 < util <= 1.0:
        raise ValidationFailed(f"gpu_memory_utilization must be above 0 and at most 1, not {util}.", code="invalid")
    if port is None:
        port = propose_port(node)
    else:
        check_port(node=node, port=port)
    gpus = cuda_visible_devices or ",".join(str(i) for i in range(
        max(1, (profile.tensor_parallel_size or 1) * (profile.pipeline_parallel_size or 1))))
    plan = planner.plan_start(node=node, profile=profile, gpu_memory_utilization=util, cuda_visible_devices=gpus)
    plan.raise_if_refused()
    # Where the gateway reaches it: the node's address when an admin set one (another host), else this host's.
    server = Server(node=node, profile=profile, served_model_name=profile.model_name, port=port,
                    host=node.host_ip or settings.PORTAL_ENGINE_HOST, status=S.QUEUED, engine=profile.engine,
                    gpu_memory_utilization=util, cuda_visible_devices=gpus, restart_policy=restart_policy,
                    started_by=user, load_on_demand=False)
    # Stored for display only (the launch builds it again from the profile): without its secrets.
    server.argv = redact.argv_redact(launch_argv(server=server, profile=profile, node=node))  # raises on unknown flags
    server.full_clean()
    server.save()
    ServerEvent.objects.create(server=server, old=S.STOPPED, new=S.QUEUED, reason=f"start requested by {user}")
    audit_record(actor=user, action="servers.server.started", target=server, ip=ip,
                 details={"profile": profile.name, "node": node.name, "port": port, "gpu_memory_utilization": util,
                          "plan": plan.as_dict()})
    payload = _payload(server)
    transaction.on_commit(lambda: events.send_server_status(payload))
    _enqueue(tasks.server_launch_task, server)
    return server


def server_restart(*, user: User, server: Server, ip: str | None = None) -> Server:
    """Queue a stopped or failed server again on its node and port (same profile, same settings)."""
    require_operator(user)
    with transaction.atomic():
        locked = _lock(server.pk)
        if locked.status not in (S.STOPPED, S.FAILED):
            raise InvalidTransition(f"Server #{server.pk} is {locked.status}: only a stopped or failed server "
                                    "can be started again.")
        if locked.group_id is not None:
            raise InvalidTransition(f"Server #{server.pk} is rank {locked.rank} of group #{locked.group_id}: start the "
                                    "group again, never one rank.", code="group_rank")
        if locked.profile is None:
            raise ValidationFailed("This server has no profile (it was found running): start a profile instead.")
        server = _requeue(locked, reason=f"start requested by {user}")
        audit_record(actor=user, action="servers.server.restarted", target=server, ip=ip)
    return server


def _requeue(locked: Server, *, reason: str) -> Server:
    """Admit a locked stopped or failed server again on its node and port, queue it and send its launch.

    The one admission path for an existing server: the port, the memory planner (without the server's
    own share) and the flags are checked as for a first start.
    """
    check_port(node=locked.node, port=locked.port, exclude_id=locked.pk)
    planner.plan_start(node=locked.node, profile=locked.profile, gpu_memory_utilization=locked.gpu_memory_utilization,
                       cuda_visible_devices=locked.cuda_visible_devices, exclude_id=locked.pk).raise_if_refused()
    argv = launch_argv(server=locked, profile=locked.profile, node=locked.node)
    server = transition(locked.pk, to=S.QUEUED, reason=reason, argv=argv, failure_code="", restart_attempts=0,
                        next_restart_at=None, cleared_at=None)
    _enqueue(tasks.server_launch_task, server)
    return server


def server_stop(*, user: User, server: Server, ip: str | None = None) -> Server:
    """Stop a server: a queued one just leaves the queue; a running or external one is signalled by its node."""
    require_operator(user)
    if server.group_id is not None:  # a rank never stops alone: the whole group does
        from servers.groups import services as groups

        groups.group_stop(user=user, group=server.group, ip=ip)
        server.refresh_from_db()
        return server
    with transaction.atomic():
        locked = Server.objects.select_for_update().get(pk=server.pk)
        reason = f"stop requested by {user}"
        if locked.status == S.QUEUED:
            server = transition(locked.pk, to=S.STOPPED, reason=reason, stopped_at=timezone.now())
        elif locked.status in (S.STARTING, S.READY, S.EXTERNAL, S.SLEEPING, S.WAKING):
            server = _send_stop(locked.pk, reason=reason)
        else:
            raise InvalidTransition(f"Server #{server.pk} is {locked.status}: there is nothing to stop.")
        audit_record(actor=user, action="servers.server.stopped", target=server, ip=ip,
                     details={"from": locked.status, "pid": locked.pid})
    return server


def _send_stop(server_id: int, *, reason: str, allowed_from: tuple | None = None) -> Server:
    """Mark a running server `stopping`; its node's worker signals the process after commit."""
    server = transition(server_id, to=S.STOPPING, reason=reason, allowed_from=allowed_from)
    _enqueue(tasks.server_stop_task, server)
    return server


def server_clear(*, user: User, server: Server, ip: str | None = None) -> Server:
    """Take a stopped or failed server off the Servers list; its row, events and audit stay as history."""
    require_operator(user)
    with transaction.atomic():
        locked = _lock(server.pk)
        if locked.status not in (S.STOPPED, S.FAILED):
            raise InvalidTransition(f"Server #{server.pk} is {locked.status}: only a stopped or failed server can "
                                    "be cleared.")
        if locked.cleared_at is None:
            Server.objects.filter(pk=locked.pk).update(cleared_at=timezone.now())
            ServerEvent.objects.create(server=locked, old=locked.status, new=locked.status,
                                       reason=f"cleared from the list by {user}")
            audit_record(actor=user, action="servers.server.cleared", target=locked, ip=ip,
                         details={"status": locked.status, "served_model_name": locked.served_model_name})
        locked.refresh_from_db()
    return locked


def server_adopt(*, user: User, server: Server, ip: str | None = None) -> Server:
    """Take over an engine found running: it becomes a `ready` server the portal routes to and can stop."""
    require_operator(user)
    with transaction.atomic():
        locked = Server.objects.select_for_update().get(pk=server.pk)
        if locked.status != S.EXTERNAL:
            raise InvalidTransition(f"Server #{server.pk} is {locked.status}: only an external process can be "
                                    "adopted.")
        if locked.host in ("127.0.0.1", "localhost", "::1") and locked.node.name != settings.NODE_NAME:
            raise ValidationFailed(f"Server #{server.pk} listens on {locked.host} of node {locked.node.name}, which "
                                   "the gateway cannot reach: restart it there with --host <the node's address>, "
                                   "or start the model from a profile.")
        server = transition(locked.pk, to=S.READY, reason=f"adopted by {user}", ready_at=timezone.now())
        audit_record(actor=user, action="servers.server.adopted", target=server, ip=ip,
                     details={"pid": locked.pid, "argv": redact.argv_redact(locked.argv or [])})
    return server


def kick_queue(node: Node) -> Server | None:
    """Launch the node's oldest queued server when no start is in progress there (starts are serialized)."""
    with transaction.atomic():
        Node.objects.select_for_update().get(pk=node.pk)
        if Server.objects.filter(node=node, status=S.STARTING).exists():
            return None
        nxt = Server.objects.filter(node=node, status=S.QUEUED).order_by("created_at", "pk").first()
        if nxt is not None:
            nxt.node = node
            _enqueue(tasks.server_launch_task, nxt)
        return nxt


# --- load on demand and unload when idle (the gateway asks, these act) --------------------------------------------

@transaction.atomic
def server_on_demand_set(*, user: User, server: Server, load_on_demand: bool, unload_idle_minutes: int | None,
                         ip: str | None = None) -> Server:
    """Mark a server to be started by the first request for its model, and/or stopped when idle."""
    require_operator(user)
    if unload_idle_minutes is not None and unload_idle_minutes < 1:
        raise ValidationFailed("Unload after at least 1 idle minute, or leave it empty to keep the server loaded.")
    locked = Server.objects.select_for_update().get(pk=server.pk)
    if locked.group_id is not None and (load_on_demand or unload_idle_minutes):
        raise ValidationFailed(f"Server #{locked.pk} is rank {locked.rank} of multi-node group #{locked.group_id}: a "
                               "group is loaded on demand and unloaded when idle whole: set it on the group (its "
                               f"leader's page, or PUT /api/servers/groups/{locked.group_id}/on-demand).",
                               code="group_rank")
    if load_on_demand and locked.profile_id is None:
        raise ValidationFailed("A server found running (no profile) cannot be loaded on demand: start a profile.")
    old = {"load_on_demand": locked.load_on_demand, "unload_idle_minutes": locked.unload_idle_minutes}
    new = {"load_on_demand": load_on_demand, "unload_idle_minutes": unload_idle_minutes}
    Server.objects.filter(pk=locked.pk).update(**new)
    if new != old:
        audit_record(actor=user, action="gateway.server.on_demand_changed", target=locked, ip=ip,
                     details={"old": old, "new": new, "model": locked.served_model_name})
    locked.refresh_from_db()
    return locked


def server_ensure_ready(*, server_id: int, user_id: int | None = None) -> Server:
    """Start a stopped or failed server marked "load on demand", or wake a sleeping one, for a request; the
    gateway calls this, then waits.

    The operator who marked the server (or put it to sleep) allowed these starts and wakes, so no role is
    checked; admission (port, memory planner, flags) is `_requeue`'s, as for a start again from the Servers
    page, and a wake is planned like an operator's. The node and row locks and the status check make
    concurrent calls start or wake it once: the later ones find it queued or waking. A group's leader starts its
    whole group (servers.groups.on_demand.group_ensure_ready).
    Raises Unavailable (or the planner's ValidationFailed) with the reason it cannot be started.
    """
    group_id = Server.objects.values_list("group_id", flat=True).get(pk=server_id)
    if group_id is not None:  # a rank is never started alone: the whole group is, on every node
        from servers.groups import on_demand

        return on_demand.group_ensure_ready(group_id=group_id, user_id=user_id)
    with transaction.atomic():
        # Node first, as every admission locks it: a wake and a start on one node are planned one at a time.
        Node.objects.select_for_update().get(pk=Server.objects.values_list("node_id", flat=True).get(pk=server_id))
        locked = _lock(server_id)
        if locked.status in (S.QUEUED, S.STARTING, S.READY, S.WAKING):
            return locked
        if locked.status == S.SLEEPING:
            return _wake_for_request(locked, user_id)
        if not locked.load_on_demand:
            raise Unavailable("its server is not marked load on demand")
        if locked.status not in (S.STOPPED, S.FAILED):
            raise Unavailable(f"its server is {locked.status}")
        if locked.profile is None:
            raise Unavailable("its server has no profile to start from")
        who = User.objects.filter(pk=user_id).first()
        server = _requeue(locked, reason=f"loaded on demand for a request of {who}")
        audit_record(actor=None, actor_name="gateway", action="gateway.server.loaded_on_demand", target=server,
                     details={"requested_by": str(who), "model": server.served_model_name})
    return server


@transaction.atomic
def server_touch(*, seen: dict[int, datetime]) -> None:
    """Advance each server's last_request_at (what idle stop reads) to when its last request ended; never back."""
    for server_id, at in seen.items():
        Server.objects.filter(pk=server_id).filter(Q(last_request_at__isnull=True) | Q(last_request_at__lt=at)) \
            .update(last_request_at=at)


def _wake_for_request(locked: Server, user_id: int | None) -> Server:
    planner.plan_wake(node=locked.node, server=locked).raise_if_refused()
    who = User.objects.filter(pk=user_id).first()
    server = _send_wake(locked.pk, reason=f"woken for a request of {who}", task=tasks.server_wake_task)
    audit_record(actor=None, actor_name="gateway", action="gateway.server.woken_on_demand", target=server,
                 details={"requested_by": str(who), "model": server.served_model_name})
    return server


def _idle_for(server: Server, minutes: int | None, *, now: datetime) -> bool:
    """Its last request (or its start) ended at least `minutes` ago."""
    if not minutes:
        return False
    last = max(filter(None, [server.last_request_at, server.ready_at, server.started_at]), default=None)
    return last is None or last <= now - timedelta(minutes=minutes)


def _idle_past_limit(server: Server, *, now: datetime) -> bool:
    """Ready or sleeping, marked "unload when idle", and idle that many minutes."""
    return server.status in (S.READY, S.SLEEPING) and _idle_for(server, server.unload_idle_minutes, now=now)


def _sleepy(server: Server, *, now: datetime) -> bool:
    """Ready, launched with sleep mode, marked "sleep when idle", and idle that many minutes."""
    return (server.status == S.READY and SLEEP_FLAG in (server.argv or [])
            and _idle_for(server, server.sleep_idle_minutes, now=now))


def server_idle_stop(*, server_id: int, now: datetime | None = None) -> Server | None:
    """Stop a server idle past its limit; None when it stays (not idle, or a request is in flight on it).

    Judged again under the row lock, so a request that ended (server_touch) or a start that happened
    since the caller looked keeps it. Never while a request is in flight: the gateways register each
    one in Redis (accounts.limits.server_inflight_count) until its stream has ended.
    """
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock(server_id)
        if not _idle_past_limit(locked, now=now) or limits.server_inflight_count(locked.pk):
            return None
        server = _send_stop(locked.pk, allowed_from=(S.READY, S.SLEEPING),
                            reason=f"idle for {locked.unload_idle_minutes} min: unloaded "
                                   "(a request loads it again when it is marked load on demand)")
        audit_record(actor=None, actor_name="gateway", action="gateway.server.unloaded_idle", target=server,
                     details={"idle_minutes": locked.unload_idle_minutes})
    return server


def servers_idle_stop(*, now: datetime | None = None) -> list[int]:
    """Stop every server idle past its limit (a beat task, every minute; safe to run twice). Returns their ids."""
    now = now or timezone.now()
    candidates = Server.objects.filter(status__in=(S.READY, S.SLEEPING), unload_idle_minutes__gt=0)
    stopped = []
    for server in candidates:
        if _idle_past_limit(server, now=now) and server_idle_stop(server_id=server.pk, now=now) is not None:
            stopped.append(server.pk)
    return stopped


# --- sleep mode: operators (and the idle policy, and the gateway's wake) ask; the node's worker acts ---------------

SLEEP_FLAG = "--enable-sleep-mode"


def _check_sleepable(locked: Server) -> None:
    """Only an engine launched with sleep mode has the endpoints (the profile may have changed since its start)."""
    if locked.engine != Server.Engine.VLLM or SLEEP_FLAG not in (locked.argv or []):
        raise ValidationFailed(f"Server #{locked.pk} was not started with sleep mode: enable sleep mode on its "
                               "profile, then stop and start it again.", code="sleep_mode_off")


def _check_idle(locked: Server) -> None:
    busy = limits.server_inflight_count(locked.pk)
    if busy:
        raise InvalidTransition(f"Server #{locked.pk} has {busy} request(s) in flight: put it to sleep when they "
                                "are done.", code="requests_in_flight")


def _check_level(level: int) -> None:
    if level not in (1, 2):
        raise ValidationFailed(f"Sleep level must be 1 (weights offloaded to host RAM) or 2 (weights dropped), "
                               f"not {level}.", code="invalid")


def _send_sleep(locked: Server, *, level: int, reason: str, task: Task | None = None) -> Server:
    """Mark a ready server `sleeping` (the gateway stops routing to it now); its node's worker asks the engine."""
    planner.plan_sleep(node=locked.node, server=locked, level=level).raise_if_refused()
    server = transition(locked.pk, to=S.SLEEPING, allowed_from=(S.READY,), reason=reason, sleep_level=level,
                        slept_at=None)
    if task is not None:
        _enqueue(task, server)
    return server


def _send_wake(server_id: int, *, reason: str, task: Task | None = None) -> Server:
    server = transition(server_id, to=S.WAKING, allowed_from=(S.SLEEPING,), reason=reason)
    if task is not None:
        _enqueue(task, server)
    return server


def server_sleep(*, user: User, server: Server, level: int = 1, ip: str | None = None) -> Server:
    """Put a ready server to sleep at `level` (1: weights to host RAM, 2: weights dropped); operators."""
    require_operator(user)
    _check_level(level)
    with transaction.atomic():
        Node.objects.select_for_update().get(pk=server.node_id)  # admissions on a node are serialized
        locked = _lock(server.pk)
        if locked.status != S.READY:
            raise InvalidTransition(f"Server #{server.pk} is {locked.status}: only a ready server can sleep.")
        _check_sleepable(locked)
        _check_idle(locked)
        server = _send_sleep(locked, level=level, reason=f"sleep (level {level}) requested by {user}",
                             task=tasks.server_sleep_task)
        audit_record(actor=user, action="servers.server.slept", target=server, ip=ip, details={"level": level})
    return server


def server_wake(*, user: User, server: Server, ip: str | None = None) -> Server:
    """Wake a sleeping server if the node's memory planner admits it; operators."""
    require_operator(user)
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=server.node_id)
        locked = _lock(server.pk)
        if locked.status != S.SLEEPING:
            raise InvalidTransition(f"Server #{server.pk} is {locked.status}: only a sleeping server can be woken.")
        plan = planner.plan_wake(node=node, server=locked)
        plan.raise_if_refused()
        server = _send_wake(locked.pk, reason=f"wake requested by {user}", task=tasks.server_wake_task)
        audit_record(actor=user, action="servers.server.woken", target=server, ip=ip, details={"plan": plan.as_dict()})
    return server


def server_swap(*, user: User, sleep: Server, wake: Server, level: int = 1, ip: str | None = None) -> Server:
    """Put `sleep` to sleep and wake `wake` in its place, admitted as one step; returns the server being woken.

    The wake is planned as if `sleep` were already asleep, and the node's worker runs both in order (one task),
    so the woken engine never asks for memory the other still holds.
    """
    require_operator(user)
    _check_level(level)
    if sleep.node_id != wake.node_id or sleep.pk == wake.pk:
        raise ValidationFailed("A swap puts one server to sleep and wakes another on the same node.", code="invalid")
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=sleep.node_id)
        going, coming = _lock(sleep.pk), _lock(wake.pk)
        if going.status != S.READY or coming.status != S.SLEEPING:
            raise InvalidTransition(f"A swap needs #{going.pk} ready (it is {going.status}) and #{coming.pk} "
                                    f"sleeping (it is {coming.status}).")
        _check_sleepable(going)
        _check_idle(going)
        plan = planner.plan_wake(node=node, server=coming, asleep={going.pk: level})
        plan.raise_if_refused()
        _send_sleep(going, level=level, reason=f"swapped out for #{coming.pk} (level {level}) by {user}")
        woken = _send_wake(coming.pk, reason=f"swapped in for #{going.pk} by {user}")
        node_ = going.node
        transaction.on_commit(lambda: enqueue_on_node(tasks.server_swap_task, node_, going.pk, coming.pk))
        audit_record(actor=user, action="servers.server.swapped", target=woken, ip=ip,
                     details={"slept": going.pk, "woken": coming.pk, "level": level, "plan": plan.as_dict()})
    return woken


def _note(server_id: int, *, status: str, **fields) -> bool:
    """Update a server's fields if it is still `status` (no transition: no history row), and tell the pages."""
    with transaction.atomic():
        if not Server.objects.filter(pk=server_id, status=status).update(**fields):
            return False
        payload = _payload(Server.objects.select_related("node").get(pk=server_id))
        transaction.on_commit(lambda: events.send_server_status(payload))
    return True


def server_sleep_confirmed(*, server_id: int, level: int, evidence: str) -> bool:
    """The engine confirmed it sleeps at `level`; False when the row moved on (a wake came meanwhile)."""
    return _note(server_id, status=S.SLEEPING, slept_at=timezone.now(),
                 status_reason=f"asleep at level {level} ({evidence})")


def server_sleep_refused(*, server_id: int, reason: str) -> Server | None:
    """The engine did not go to sleep: the server is ready again (it still answers), saying why."""
    try:
        return transition(server_id, to=S.READY, allowed_from=(S.SLEEPING,), sleep_level=None, slept_at=None,
                          reason=f"did not go to sleep: {reason}")
    except InvalidTransition:
        return None


def server_woken(*, server_id: int, evidence: str) -> Server | None:
    try:
        return transition(server_id, to=S.READY, allowed_from=(S.WAKING,), sleep_level=None, slept_at=None,
                          ready_at=timezone.now(), reason=f"awake ({evidence})")
    except InvalidTransition:
        return None


def server_wake_refused(*, server_id: int, reason: str) -> Server | None:
    """The engine did not wake: the server stays asleep, saying why."""
    try:
        return transition(server_id, to=S.SLEEPING, allowed_from=(S.WAKING,), reason=f"did not wake: {reason}")
    except InvalidTransition:
        return None


def server_idle_sleep(*, server_id: int, now: datetime | None = None) -> Server | None:
    """Put a server idle past its "sleep when idle" limit to sleep; None when it stays awake.

    Judged again under the locks, and never while a request is in flight (as server_idle_stop).
    """
    now = now or timezone.now()
    with transaction.atomic():
        Node.objects.select_for_update().get(pk=Server.objects.values_list("node_id", flat=True).get(pk=server_id))
        locked = _lock(server_id)
        if not _sleepy(locked, now=now) or limits.server_inflight_count(locked.pk):
            return None
        level = locked.idle_sleep_level
        server = _send_sleep(locked, level=level, task=tasks.server_sleep_task,
                             reason=f"idle for {locked.sleep_idle_minutes} min: asleep at level {level} (a request "
                                    "wakes it)")
        audit_record(actor=None, actor_name="gateway", action="gateway.server.slept_idle", target=server,
                     details={"idle_minutes": locked.sleep_idle_minutes, "level": level})
    return server


def servers_idle_sleep(*, now: datetime | None = None) -> list[int]:
    """Put every server idle past its "sleep when idle" limit to sleep (beat, with the idle stop). Returns their ids."""
    now = now or timezone.now()
    slept = []
    for server in Server.objects.filter(status=S.READY, sleep_idle_minutes__gt=0):
        if _sleepy(server, now=now):
            try:
                if server_idle_sleep(server_id=server.pk, now=now) is not None:
                    slept.append(server.pk)
            except ValidationFailed:  # the host cannot hold its weights at that level: it stays awake
                continue
    return slept


@transaction.atomic
def server_sleep_policy_set(*, user: User, server: Server, sleep_idle_minutes: int | None, level: int = 1,
                            ip: str | None = None) -> Server:
    """Put a server to sleep after N idle minutes (before its unload, if it has one); None turns it off."""
    require_operator(user)
    _check_level(level)
    if sleep_idle_minutes is not None and sleep_idle_minutes < 1:
        raise ValidationFailed("Sleep after at least 1 idle minute, or leave it empty to keep the server awake.")
    locked = _lock(server.pk)
    if sleep_idle_minutes is not None:
        _check_sleepable(locked)
    old = {"sleep_idle_minutes": locked.sleep_idle_minutes, "idle_sleep_level": locked.idle_sleep_level}
    new = {"sleep_idle_minutes": sleep_idle_minutes, "idle_sleep_level": level}
    Server.objects.filter(pk=locked.pk).update(**new)
    if new != old:
        audit_record(actor=user, action="servers.server.sleep_policy_changed", target=locked, ip=ip,
                     details={"old": old, "new": new})
    locked.refresh_from_db()
    return locked


def server_sleep_observed(*, server_id: int, level: int) -> Server | None:
    """The engine says it sleeps at `level` (0: awake) though the row says otherwise: follow the engine."""
    try:
        if level:
            return transition(server_id, to=S.SLEEPING, allowed_from=(S.READY,), sleep_level=level,
                              slept_at=timezone.now(), reason=f"the engine reports it sleeps at level {level} "
                              "(vllm:engine_sleep_state, /is_sleeping): put to sleep outside the portal")
        return transition(server_id, to=S.READY, allowed_from=(S.SLEEPING,), sleep_level=None, slept_at=None,
                          reason="the engine reports it is awake (vllm:engine_sleep_state, /is_sleeping): woken "
                                 "outside the portal")
    except InvalidTransition:
        return None
