"""Load on demand and unload when idle for a whole multi-node group, as servers/lifecycle.py does for one server.

The gateway routes a group's model to its leader (rank 0), so the leader's row is what a request names: its
last_request_at (servers.lifecycle.server_touch) and its in-flight count measure the group's idleness, and a
request for a stopped leader asks `group_ensure_ready`, which starts every rank through its own node's queue
(services._requeue, the same path as an operator's "start again"). The group row lock makes concurrent
requests start it once: the later ones find it starting.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts import limits
from accounts.models import User
from accounts.selectors import require_operator
from accounts.services import audit_record
from servers.groups import services
from servers.models import Server, ServerGroup
from sparkportal.exceptions import Unavailable, ValidationFailed

G = ServerGroup.Status
# A week: a longer idle limit is a typo more often than a wish (leave it empty to keep the group loaded).
MAX_IDLE_MINUTES = 7 * 24 * 60


def _check_policy(group: ServerGroup, *, load_on_demand: bool, unload_idle_minutes: int | None) -> None:
    if unload_idle_minutes is not None and not 1 <= unload_idle_minutes <= MAX_IDLE_MINUTES:
        raise ValidationFailed(f"Unload after 1 to {MAX_IDLE_MINUTES} idle minutes (a week), not "
                               f"{unload_idle_minutes}; leave it empty to keep the group loaded.", code="invalid")
    # The profile may have been edited down to one node since the group started: a restart would be refused.
    if (load_on_demand or unload_idle_minutes) and group.profile.node_count < 2:
        raise ValidationFailed(f"Profile {group.profile.name} now runs on one node: start it as a server and mark "
                               f"that server load on demand instead of group #{group.pk}.", code="single_node")


@transaction.atomic
def group_on_demand_set(*, user: User, group: ServerGroup, load_on_demand: bool, unload_idle_minutes: int | None,
                        ip: str | None = None) -> ServerGroup:
    """Mark a group to be started whole by the first request for its model, and/or stopped whole when idle."""
    require_operator(user)
    locked = services._lock_group(group.pk)
    _check_policy(locked, load_on_demand=load_on_demand, unload_idle_minutes=unload_idle_minutes)
    old = {"load_on_demand": locked.load_on_demand, "unload_idle_minutes": locked.unload_idle_minutes}
    new = {"load_on_demand": load_on_demand, "unload_idle_minutes": unload_idle_minutes}
    ServerGroup.objects.filter(pk=locked.pk).update(**new)
    if new != old:
        audit_record(actor=user, action="servers.group.on_demand_changed", target=locked, ip=ip,
                     details={"old": old, "new": new, "model": locked.served_model_name})
    locked.refresh_from_db()
    return locked


def group_ensure_ready(*, group_id: int, user_id: int | None = None) -> Server:
    """Start a stopped or failed group marked "load on demand" for a request; returns its leader, which the gateway
    waits for. No role is checked: the operator who marked the group allowed these starts (as
    servers.lifecycle.server_ensure_ready). Raises Unavailable with the reason it cannot be started."""
    with transaction.atomic():
        locked = services._lock_group(group_id)
        if locked.status not in (G.STARTING, G.READY):
            _start_for_request(locked, user_id)
        return Server.objects.select_related("node", "profile").get(group_id=group_id, rank=0)


def _start_for_request(locked: ServerGroup, user_id: int | None) -> None:
    if not locked.load_on_demand:
        raise Unavailable(f"its multi-node group #{locked.pk} is not marked load on demand")
    if locked.status == G.STOPPING:
        raise Unavailable(f"its multi-node group #{locked.pk} is stopping")
    who = User.objects.filter(pk=user_id).first()
    # A request for a failed group is an explicit ask: it gets a fresh restart budget, as an operator's start.
    services._requeue(locked, reason=f"loaded on demand for a request of {who}", attempts=0)
    audit_record(actor=None, actor_name="gateway", action="gateway.group.loaded_on_demand", target=locked,
                 details={"requested_by": str(who), "model": locked.served_model_name})


def _leader(group_id: int) -> Server | None:
    return Server.objects.filter(group_id=group_id, rank=0).first()


def _idle_past_limit(group: ServerGroup, leader: Server | None, *, now: datetime) -> bool:
    """Ready, marked "unload when idle", and no request ended on its leader (nor did it start) in that many
    minutes."""
    if group.status != G.READY or not group.unload_idle_minutes or leader is None:
        return False
    last = max(filter(None, [leader.last_request_at, group.ready_at, leader.ready_at]), default=None)
    return last is None or last <= now - timedelta(minutes=group.unload_idle_minutes)


def group_idle_stop(*, group_id: int, now: datetime | None = None) -> ServerGroup | None:
    """Stop every rank of a group idle past its limit; None when it stays (not idle, or a request is in flight).

    Judged again under the group lock, so a request that ended or a start since the caller looked keeps it; never
    while the gateways count a request in flight on its leader (accounts.limits.server_inflight_count)."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = services._lock_group(group_id)
        leader = _leader(group_id)
        if not _idle_past_limit(locked, leader, now=now) or limits.server_inflight_count(leader.pk):
            return None
        reason = (f"idle for {locked.unload_idle_minutes} min: every rank unloaded (a request loads the group "
                  "again when it is marked load on demand)")
        pending = services._stop_ranks(locked.pk, reason=reason)
        to, stamp = (G.STOPPING, {}) if pending else (G.STOPPED, {"stopped_at": now})
        services._set(locked.pk, to=to, allowed=(G.READY,), reason=reason, next_restart_at=None, **stamp)
        audit_record(actor=None, actor_name="gateway", action="gateway.group.unloaded_idle", target=locked,
                     details={"idle_minutes": locked.unload_idle_minutes, "model": locked.served_model_name})
        locked.refresh_from_db()
    return locked


def groups_idle_stop(*, now: datetime | None = None) -> list[int]:
    """Stop every group idle past its limit (beat, with servers_idle_stop; safe to run twice). Returns their ids."""
    now = now or timezone.now()
    stopped = []
    for group in ServerGroup.objects.filter(status=G.READY, unload_idle_minutes__gt=0):
        if _idle_past_limit(group, _leader(group.pk), now=now) and group_idle_stop(group_id=group.pk, now=now):
            stopped.append(group.pk)
    return stopped
