"""REST: a server's engine-metric history (GET /api/servers/{id}/metrics)."""
from ninja import Query, Router

from servers import events
from servers.metrics import selectors as metric_selectors
from servers.metrics.schemas import MetricFilter, MetricSampleOut

router = Router()


@router.get("/{server_id}/metrics", response=list[MetricSampleOut], url_name="server-metrics")
def server_metrics_history(request, server_id: int, filters: Query[MetricFilter]):
    """Samples oldest first: one per scrape for the last hour, then one per minute (7 days are kept)."""
    server = metric_selectors.server_for_metrics(user=request.user, server_id=server_id)
    rows = metric_selectors.server_metric_history(server=server, since=filters.since, until=filters.until,
                                                  limit=filters.limit)
    return [{**events.metrics_payload(row), "resolution_s": row.resolution_s} for row in rows]
