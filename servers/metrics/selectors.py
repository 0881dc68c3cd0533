"""Reads of engine metric samples: chart points, the latest sample per server, history."""
from datetime import datetime

from django.shortcuts import get_object_or_404

from accounts.models import User
from servers import events
from servers.models import Server, ServerMetricSample


def server_metric_points(*, server: Server, limit: int = 120) -> list[dict]:
    """The last `limit` samples as event payloads, oldest first (what the live chart starts from)."""
    rows = ServerMetricSample.objects.filter(server=server).order_by("-at")[:limit]
    return [dict(events.metrics_payload(row)) for row in reversed(rows)]


def server_metric_history(*, server: Server, since: datetime | None = None, until: datetime | None = None,
                          limit: int = 1000) -> list[ServerMetricSample]:
    """Samples of one server in a time range, oldest first; raw and per-minute rows alike."""
    rows = ServerMetricSample.objects.filter(server=server)
    if since is not None:
        rows = rows.filter(at__gte=since)
    if until is not None:
        rows = rows.filter(at__lte=until)
    return list(reversed(rows.order_by("-at")[:limit]))


def server_metric_latest(*, servers: list[Server]) -> dict[int, ServerMetricSample]:
    """The newest sample of each server (one indexed lookup each; servers are few)."""
    latest = {}
    for server in servers:
        row = ServerMetricSample.objects.filter(server=server).order_by("-at").first()
        if row is not None:
            latest[server.pk] = row
    return latest


def server_for_metrics(*, user: User, server_id: int) -> Server:
    """A server whose figures the user may read: every signed-in user may (they chat with these models)."""
    return get_object_or_404(Server.objects.select_related("node"), pk=server_id)
