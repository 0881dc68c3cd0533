"""Gateway writes: servers' last request time, load on demand, idle unload, conversations."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from servers.models import Server

log = logging.getLogger(__name__)


def server_requests_touch(*, seen: dict[int, datetime]) -> None:
    """Advance Server.last_request_at (what idle unload reads); never moves it backwards."""
    for server_id, at in seen.items():
        Server.objects.filter(pk=server_id).filter(Q(last_request_at__isnull=True) | Q(last_request_at__lt=at)) \
            .update(last_request_at=at)


def servers_idle(*, now: datetime | None = None) -> list[Server]:
    """Ready servers marked "unload when idle" whose last request ended N minutes ago."""
    now = now or timezone.now()
    candidates = Server.objects.filter(status=Server.Status.READY, unload_idle_minutes__isnull=False,
                                       unload_idle_minutes__gt=0)
    idle = []
    for server in candidates:
        last = max(filter(None, [server.last_request_at, server.ready_at, server.started_at]), default=None)
        if last is None or last <= now - timedelta(minutes=server.unload_idle_minutes):
            idle.append(server)
    return idle



def server_load_on_demand(*, server_id: int, user_id: int) -> None:
    """Start a stopped server marked "load on demand" through the servers supervisor.

    Concurrent calls are harmless: the supervisor's transition is guarded by a row lock, and a
    server that is already queued or starting is left alone.
    """
    from accounts.models import User
    from servers import services as server_services
    from sparkportal.exceptions import InvalidTransition, Unavailable

    start = getattr(server_services, "server_start", None)
    if start is None:
        raise Unavailable("this portal has no server supervisor to start it")
    server = Server.objects.get(pk=server_id)
    if server.status in (Server.Status.QUEUED, Server.Status.STARTING, Server.Status.READY):
        return
    if not server.load_on_demand:
        raise Unavailable("its server is not marked load on demand")
    try:
        start(server=server, actor=User.objects.filter(pk=user_id).first())
    except InvalidTransition:
        return  # another request (or process) started it first


def server_failure_reason(*, server_id: int) -> str:
    server = Server.objects.filter(pk=server_id).only("status", "status_reason").first()
    if server is None:
        return "its server was removed"
    return server.status_reason or f"it is {server.status}"
