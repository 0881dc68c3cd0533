"""Prometheus gauges of the fair queue, read from Redis at scrape time (the queue lives there, not in a process)."""
from prometheus_client.core import GaugeMetricFamily

from gateway.admission.scripts import PREFIX


class QueueCollector:
    def collect(self):
        from accounts.limits import sync_redis

        waiting = GaugeMetricFamily("portal_gateway_queued", "Requests waiting in the fair queue, by model.",
                                    labels=["model"])
        client = sync_redis()
        for key in client.scan_iter(match=f"{PREFIX}*:meta", count=1000):
            model = key.decode()[len(PREFIX):-len(":meta")]
            waiting.add_metric([model], client.hlen(key))
        yield waiting
