"""Prometheus collector of the servers app: server states, engine figures, node GPU and host memory."""
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from nodes.models import Node
from servers.metrics import selectors as metric_selectors
from servers.models import Server

GIB = 1024**3
# (metric suffix, help, sample field, stat label or None)
SERVER_FIGURES = [
    ("generation_tokens_per_second", "Generated tokens per second over the last scrape interval.",
     "generation_tps", None),
    ("prompt_tokens_per_second", "Prompt tokens per second over the last scrape interval.", "prompt_tps", None),
    ("requests_per_second", "Finished requests per second over the last scrape interval.", "requests_per_s", None),
    ("requests_running", "Requests in the engine's running batch.", "running", None),
    ("requests_waiting", "Requests waiting in the engine's queue.", "waiting", None),
    ("kv_cache_usage_ratio", "KV-cache usage, 0-1.", "kv_cache_usage", None),
    ("prefix_cache_hit_ratio", "Prefix-cache hits / queries over the last scrape interval.",
     "prefix_cache_hit_rate", None),
    ("ttft_seconds", "Time to first token over the last scrape interval.", "ttft_{}_s", ("mean", "p50", "p95")),
    ("tpot_seconds", "Mean time per output token of the requests finished in the last interval.",
     "tpot_{}_s", ("mean",)),
    ("itl_seconds", "Inter-token latency over the last scrape interval.", "itl_{}_s", ("mean", "p50", "p95")),
    ("e2e_seconds", "End-to-end request latency over the last scrape interval.", "e2e_{}_s",
     ("mean", "p50", "p95")),
]
LIVE = (Server.Status.READY, Server.Status.EXTERNAL)


class ServersCollector:
    def collect(self):
        servers = list(Server.objects.select_related("node").order_by("pk"))
        yield from self._states(servers)
        yield from self._figures([s for s in servers if s.status in LIVE])
        yield from self._nodes(servers)

    def _states(self, servers):
        family = GaugeMetricFamily("sparkportal_server_status", "1 for the server's current status, else 0.",
                                   labels=["server", "model", "node", "status"])
        for server in servers:
            for status in Server.Status.values:
                family.add_metric([str(server.pk), server.served_model_name, server.node.name, status],
                                  1.0 if server.status == status else 0.0)
        yield family

    def _figures(self, servers):
        # A sample older than three scrape periods is stale: say nothing rather than a frozen rate.
        fresh_after = timezone.now() - timedelta(seconds=3 * settings.PORTAL_METRICS_SCRAPE_SECONDS)
        latest = {pk: row for pk, row in metric_selectors.server_metric_latest(servers=servers).items()
                  if row.at >= fresh_after}
        labels = ["server", "model", "node"]
        for suffix, doc, field, stats in SERVER_FIGURES:
            family = GaugeMetricFamily(f"sparkportal_server_{suffix}", doc, labels=labels + (["stat"] if stats else []))
            for server in servers:
                row = latest.get(server.pk)
                if row is None:
                    continue
                base = [str(server.pk), server.served_model_name, server.node.name]
                for stat in stats or (None,):
                    value = getattr(row, field.format(stat) if stat else field)
                    if value is not None:
                        family.add_metric(base + ([stat] if stat else []), value)
            yield family

    def _nodes(self, servers):
        planned = GaugeMetricFamily("sparkportal_node_gpu_memory_planned_ratio",
                                    "Sum of gpu_memory_utilization of the node's live servers.", labels=["node"])
        budget = GaugeMetricFamily("sparkportal_node_gpu_memory_budget_ratio",
                                   "The node's budget for that sum.", labels=["node"])
        heartbeat = GaugeMetricFamily("sparkportal_node_heartbeat_timestamp_seconds",
                                      "Unix time of the node's last heartbeat.", labels=["node"])
        ram_used = GaugeMetricFamily("sparkportal_node_ram_used_bytes", "Host RAM in use.", labels=["node"])
        ram_total = GaugeMetricFamily("sparkportal_node_ram_total_bytes", "Host RAM.", labels=["node"])
        gpu_labels = ["node", "gpu", "name"]
        gpu = {
            "memory_used_gb": GaugeMetricFamily("sparkportal_node_gpu_memory_used_bytes",
                                                "GPU memory in use (absent on unified-memory GPUs).",
                                                labels=gpu_labels),
            "memory_total_gb": GaugeMetricFamily("sparkportal_node_gpu_memory_total_bytes",
                                                 "GPU memory (absent on unified-memory GPUs).", labels=gpu_labels),
            "temperature_c": GaugeMetricFamily("sparkportal_node_gpu_temperature_celsius", "GPU temperature.",
                                               labels=gpu_labels),
            "power_w": GaugeMetricFamily("sparkportal_node_gpu_power_watts", "GPU power draw.", labels=gpu_labels),
            "utilization_pct": GaugeMetricFamily("sparkportal_node_gpu_utilization_ratio", "GPU utilization, 0-1.",
                                                 labels=gpu_labels),
        }
        scale = {"memory_used_gb": GIB, "memory_total_gb": GIB, "utilization_pct": 0.01}
        live_share: dict[int, float] = {}
        for server in servers:
            if server.status in LIVE:
                live_share[server.node_id] = live_share.get(server.node_id, 0.0) + server.gpu_memory_utilization
        for node in Node.objects.order_by("name"):
            planned.add_metric([node.name], live_share.get(node.pk, 0.0))
            budget.add_metric([node.name], node.memory_budget)
            if node.last_heartbeat_at:
                heartbeat.add_metric([node.name], node.last_heartbeat_at.timestamp())
            host = node.host_facts or {}
            if host.get("ram_total_gb") is not None:
                ram_used.add_metric([node.name], host["ram_used_gb"] * GIB)
                ram_total.add_metric([node.name], host["ram_total_gb"] * GIB)
            for facts in node.gpu_facts or []:
                for key, family in gpu.items():
                    if facts.get(key) is not None:
                        family.add_metric([node.name, str(facts.get("index")), str(facts.get("name", ""))],
                                          facts[key] * scale.get(key, 1))
        yield from (planned, budget, heartbeat, ram_used, ram_total, *gpu.values())
