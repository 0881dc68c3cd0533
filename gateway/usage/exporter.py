"""Prometheus counters per user and model, read from the usage ledger at scrape time.

Like the servers' collector, it reads the database, so every web process answers with the same
totals whichever process served the requests. The ledger is append-only, so the sums only grow.
"""
from prometheus_client.core import CounterMetricFamily


class GatewayCollector:
    def collect(self):
        from django.db.models import Count, Sum

        from gateway.models import UsageRecord

        requests = CounterMetricFamily("portal_gateway_requests", "Gateway requests by user, model and HTTP status.",
                                       labels=["user", "model", "status"])
        tokens = CounterMetricFamily("portal_gateway_tokens", "Tokens through the gateway by user, model and kind.",
                                     labels=["user", "model", "kind"])
        rows = (UsageRecord.objects.values("username", "model", "status")
                .annotate(n=Count("id"), prompt=Sum("prompt_tokens"), cached=Sum("cached_tokens"),
                          completion=Sum("completion_tokens"))
                .order_by())
        spent: dict[tuple[str, str], list[int]] = {}
        for row in rows:
            requests.add_metric([row["username"], row["model"], str(row["status"])], row["n"])
            acc = spent.setdefault((row["username"], row["model"]), [0, 0, 0])
            acc[0] += row["prompt"] or 0
            acc[1] += row["completion"] or 0
            acc[2] += row["cached"] or 0
        for (user, model), (prompt, completion, cached) in sorted(spent.items()):
            tokens.add_metric([user, model, "prompt"], prompt)
            tokens.add_metric([user, model, "completion"], completion)
            tokens.add_metric([user, model, "cached_prompt"], cached)
        yield requests
        yield tokens
