"""Engine metrics: scrape each live server's /metrics, store the interval figures, push them live, compact.

The previous snapshot of each server lives in the cache (Redis), keyed by server and pid, so
every worker of the node (and a restarted one) derives from the same last scrape.
"""
import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from servers import clients, events, sleep
from servers.metrics import derive
from servers.models import Server, ServerMetricSample

log = logging.getLogger(__name__)

# A sleeping engine still answers /metrics (seen on vLLM 0.26), and its sleep gauge is checked against the row.
SCRAPED_STATUSES = (Server.Status.READY, Server.Status.EXTERNAL, Server.Status.SLEEPING, Server.Status.WAKING)
SNAPSHOT_TTL_S = 300
DOWNSAMPLE_S = 60


def _snapshot_key(server: Server) -> str:
    return f"servers:metrics:snapshot:{server.pk}:{server.pid or 0}"


def server_engine(server: Server) -> str:
    """"tei" or "vllm": the profile says so; an adopted process without a profile is told by its argv."""
    if server.profile_id is not None:
        return server.profile.engine
    return derive.engine_of(server.argv)


def scrape_timeout_s() -> float:
    return max(0.5, min(5.0, settings.PORTAL_METRICS_SCRAPE_SECONDS * 0.8))


def server_metrics_scrape_node(*, node_name: str) -> list[ServerMetricSample]:
    """Scrape every ready or external server of one node, all at once, and record what answered.

    1. Claim this node's scrape slot for most of one period, so a duplicated beat tick or a
       second worker on the node does not scrape twice (intervals of 0.1 s make noisy rates).
    2. GET each server's /metrics concurrently (servers/clients.py).
    3. Record each answer; an engine that does not answer only logs (its status is the
       supervisor's business, through /health).
    """
    period = settings.PORTAL_METRICS_SCRAPE_SECONDS
    if not cache.add(f"servers:metrics:claim:{node_name}", 1, timeout=max(1, int(period * 0.8))):
        return []
    # A headless follower of a multi-node group has no HTTP: its leader's /metrics covers the model.
    servers = list(Server.objects.filter(node__name=node_name, status__in=SCRAPED_STATUSES).exclude(rank__gt=0)
                   .select_related("profile"))
    fetched = clients.get_texts({s.pk: f"{s.base_url}/metrics" for s in servers}, timeout=scrape_timeout_s())
    samples = []
    for server in servers:
        answer = fetched[server.pk]
        if answer.text is None:
            log.info("metrics of server %s not scraped: %s", server.pk, answer.error)
            continue
        sleep.server_sleep_observe(server, answer.text)
        sample = server_metrics_record(server=server, text=answer.text, received_at=answer.received_at)
        if sample is not None:
            samples.append(sample)
    return samples


def server_metrics_record(*, server: Server, text: str, received_at: datetime) -> ServerMetricSample | None:
    """Derive the figures since this server's previous scrape, store them and publish `metrics.sample`."""
    try:
        snap = derive.snapshot(text, at=received_at.timestamp(), engine=server_engine(server))
    except derive.MetricsError as exc:
        log.warning("metrics of server %s unreadable: %s", server.pk, exc)
        return None
    key = _snapshot_key(server)
    previous = cache.get(key)
    cache.set(key, snap, timeout=SNAPSHOT_TTL_S)
    figures = derive.derive(previous, snap)
    sample = ServerMetricSample.objects.create(
        server=server, at=received_at, interval_s=figures["interval_s"],
        **{field: figures.get(field) for field in derive.FIGURE_FIELDS})
    events.send_metrics_sample(events.metrics_payload(sample))
    return sample


def _weighted(rows: list[ServerMetricSample], field: str) -> float | None:
    """Interval-weighted mean of one figure over rows; rows without the figure do not count.

    Percentiles averaged this way are an approximation (the exact value would need the
    buckets), which is what a minute-resolution history chart needs.
    """
    total = weight = 0.0
    for row in rows:
        value = getattr(row, field)
        if value is not None:
            w = row.interval_s or 1.0
            total += value * w
            weight += w
    return total / weight if weight else None


@transaction.atomic
def server_metric_samples_compact(*, now: datetime | None = None) -> dict[str, int]:
    """Average raw samples older than the downsample age into one row per server and minute; drop expired rows.

    Runs on the beat schedule and is safe to run twice: only raw rows are averaged, and they
    are deleted in the same transaction that writes their minute rows.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.PORTAL_METRICS_DOWNSAMPLE_AFTER_MINUTES)
    expired, _ = ServerMetricSample.objects.filter(
        at__lt=now - timedelta(days=settings.PORTAL_METRICS_RETENTION_DAYS)).delete()
    raw = list(ServerMetricSample.objects.select_for_update()
               .filter(resolution_s=0, at__lt=cutoff).order_by("server_id", "at"))
    minutes: dict[tuple[int, datetime], list[ServerMetricSample]] = defaultdict(list)
    for row in raw:
        minutes[(row.server_id, row.at.replace(second=0, microsecond=0))].append(row)
    ServerMetricSample.objects.bulk_create([
        ServerMetricSample(
            server_id=server_id, at=minute, resolution_s=DOWNSAMPLE_S,
            interval_s=sum(r.interval_s or 0.0 for r in rows) or None,
            **{field: _weighted(rows, field) for field in derive.FIGURE_FIELDS})
        for (server_id, minute), rows in minutes.items()
    ])
    # New rows are stamped `now`, after the cutoff, so this deletes exactly the rows averaged above.
    ServerMetricSample.objects.filter(resolution_s=0, at__lt=cutoff).delete()
    return {"expired": expired, "downsampled": len(raw), "minutes": len(minutes)}
